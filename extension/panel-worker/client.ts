/**
 * The host's end of the panel worker (worker.ts, bundled as dist/panel-worker.js): replays and adapter
 * diffs run there, one at a time, off the extension host's thread. Requests queue here, so cancelling one that has not
 * started just drops it; the running one is cancelled through a shared flag the worker checks. A
 * worker that dies fails its request with a message saying so, and the next request starts a new one.
 */
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { PanelJob, PanelJobKind, PanelJobOf, PanelJobResults, WorkerData, WorkerReply, WorkerRequest } from './protocol';

/** A job abandoned by `cancel` (or by shutting the worker down). */
export class JobCancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'JobCancelled';
  }
}

type OnProgress = (done: number, total: number) => void;

/** A job submitted: its id (for `cancel`) and its result. */
export interface Submitted<T> {
  id: number;
  result: Promise<T>;
}

interface Pending {
  id: number;
  job: PanelJob;
  onProgress?: (done: number, total: number) => void;
  resolve: (value: unknown) => void;
  reject: (e: Error) => void;
}

export interface PanelWorkerClientOptions {
  /** Path of the bundled worker script. */
  workerScript: string;
  /** Extra environment for the worker thread. */
  env?: NodeJS.ProcessEnv;
  /**
   * How long a cancelled job may take to notice (it checks between steps); past it the worker thread
   * is ended, so Cancel works even when a job is stuck in one long synchronous call.
   */
  cancelGraceMs?: number;
}

export class PanelWorkerClient {
  private worker: Worker | null = null;
  private readonly cancelFlag = new Int32Array(new SharedArrayBuffer(4));
  private queue: Pending[] = [];
  private running: Pending | null = null;
  private nextId = 1;
  private disposed = false;

  constructor(private readonly options: PanelWorkerClientOptions) {}

  /** Submits a job; its result resolves with what the worker returns, or rejects with its error. */
  submit<K extends PanelJobKind>(job: PanelJobOf<K>, onProgress?: OnProgress): Submitted<PanelJobResults[K]> {
    const id = this.nextId++;
    const result = new Promise<PanelJobResults[K]>((resolve, reject) => {
      if (this.disposed) return reject(new Error('the panel worker has been shut down'));
      this.queue.push({ id, job, onProgress, resolve: resolve as (v: unknown) => void, reject });
      this.pump();
    });
    return { id, result };
  }

  adapterDiff(left: string, right: string, baseModel: string | null, onProgress?: OnProgress): Submitted<PanelJobResults['adapter-diff']> {
    return this.submit({ type: 'adapter-diff', left, right, baseModel }, onProgress);
  }

  replay(input: Omit<PanelJobOf<'replay'>, 'type'>, onProgress?: OnProgress): Submitted<PanelJobResults['replay']> {
    return this.submit({ type: 'replay', ...input }, onProgress);
  }

  /** Abandons a request: it rejects with JobCancelled (at once if queued, within the grace period if running). */
  cancel(id: number): void {
    const queued = this.queue.findIndex((p) => p.id === id);
    if (queued >= 0) {
      const [p] = this.queue.splice(queued, 1);
      p.reject(new JobCancelled());
      return;
    }
    if (this.running?.id !== id) return;
    Atomics.store(this.cancelFlag, 0, id);
    const worker = this.worker;
    const timer = setTimeout(() => {
      if (this.running?.id !== id || this.worker !== worker || !worker) return;
      // The job did not stop between steps: end the thread; the next job starts a fresh one.
      const p = this.running;
      this.running = null;
      this.worker = null;
      void worker.terminate();
      p.reject(new JobCancelled());
      if (!this.disposed) this.pump();
    }, this.options.cancelGraceMs ?? 3000);
    timer.unref?.();
  }

  get busy(): boolean {
    return this.running !== null || this.queue.length > 0;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    for (const p of this.queue.splice(0)) p.reject(new JobCancelled());
    if (this.running) {
      this.running.reject(new JobCancelled());
      this.running = null;
    }
    const w = this.worker;
    this.worker = null;
    if (w) {
      w.postMessage({ type: 'shutdown' } satisfies WorkerRequest);
      // Give the engine a moment to release its sessions before the thread is ended.
      const timer = setTimeout(() => void w.terminate(), 2000);
      await new Promise<void>((resolve) => w.once('exit', () => resolve()));
      clearTimeout(timer);
    }
  }

  private pump(): void {
    if (this.running || this.queue.length === 0) return;
    let worker: Worker;
    try {
      worker = this.ensureWorker();
    } catch (e) {
      for (const p of this.queue.splice(0)) p.reject(e as Error);
      return;
    }
    this.running = this.queue.shift()!;
    const request: WorkerRequest = { ...this.running.job, id: this.running.id };
    worker.postMessage(request);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    if (!fs.existsSync(this.options.workerScript)) {
      throw new Error(`the panel worker ${this.options.workerScript} is missing; the extension was not built completely (npm run build)`);
    }
    const data: WorkerData = { cancel: this.cancelFlag.buffer as SharedArrayBuffer };
    const worker = new Worker(this.options.workerScript, { workerData: data, env: this.options.env ?? process.env, stderr: false, stdout: false });
    worker.on('message', (m: WorkerReply) => this.onReply(m));
    worker.on('error', (e) => this.onWorkerGone(worker, `the panel worker failed: ${e.message}`));
    worker.on('exit', (code) => this.onWorkerGone(worker, `the panel worker exited (code ${code})`));
    this.worker = worker;
    return worker;
  }

  private onReply(m: WorkerReply): void {
    const p = this.running;
    if (!p || p.id !== m.id) return;
    if (m.type === 'progress') {
      p.onProgress?.(m.done, m.total);
      return;
    }
    this.running = null;
    if (m.type === 'result') p.resolve(m.result);
    else p.reject(m.cancelled ? new JobCancelled() : new Error(m.message));
    this.pump();
  }

  private onWorkerGone(worker: Worker, message: string): void {
    if (this.worker !== worker) return;
    this.worker = null;
    const p = this.running;
    this.running = null;
    p?.reject(new Error(`${message}; try again`));
    if (!this.disposed) this.pump();
  }
}
