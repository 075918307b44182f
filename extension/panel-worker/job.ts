/** What every job of the panel worker is given, and the two ways a job ends early. */

export interface JobContext {
  progress(done: number, total: number): void;
  /** Throws Cancelled when the host abandoned this job; long loops call it between steps. */
  checkCancelled(): void;
}

export class Cancelled extends Error {
  constructor() {
    super('cancelled');
  }
}

/** A problem with the user's data (not a bug): its message is the whole story. */
export class JobError extends Error {}
