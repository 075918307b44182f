/**
 * The jobs the host has started, and stopping a run whichever process writes it. Pure Node: the
 * editor's side (status bar, notifications, progress) subscribes to the events.
 */
import * as path from 'node:path';
import { readRunInfo, signalTrainer } from '../rundir';
import { formatApproval, type ApprovedJudge } from '../trainer/judges/endpoint-approval';
import { CliJob, type JobKind, type JobLaunch, type JobProgress, type JobSpec } from './cli-job';
import { Emitter } from './emitter';
import type { JobOutcome } from './job-outcome';

/** `--allow-judge` for each judge endpoint the user approved for a job on someone else's run. */
const allow = (approved: readonly ApprovedJudge[] = []): string[] => approved.flatMap((a) => ['--allow-judge', formatApproval(a)]);

/** The `absp` argument lists of the jobs the editor starts. */
export const cliArgs = {
  /** A new run; runs started from the editor go to the runs folder the Runs view shows. */
  run: (config: string | null, runsFolder: string): string[] => ['run', ...(config ? [config] : []), '--runs-dir', runsFolder],
  resume: (runDir: string, approved?: readonly ApprovedJudge[]): string[] => ['run', '--resume', runDir, ...allow(approved)],
  crossplay: (runDirs: readonly string[], approved?: readonly ApprovedJudge[]): string[] => ['crossplay', ...runDirs, ...allow(approved)],
  eval: (runDir: string, data: string, o: { round?: number; name?: string; approved?: readonly ApprovedJudge[] } = {}): string[] => [
    'eval',
    '--run',
    runDir,
    '--data',
    data,
    ...(o.round !== undefined ? ['--round', String(o.round)] : []),
    ...(o.name ? ['--name', o.name] : []),
    ...allow(o.approved),
  ],
};

export type StopResult = 'stopping' | 'killed' | 'signalled' | 'not-running' | 'elsewhere';

export interface JobEvent {
  job: CliJob;
}

export class JobManager {
  private readonly jobs = new Set<CliJob>();
  private readonly startedEmitter = new Emitter<CliJob>();
  private readonly progressEmitter = new Emitter<{ job: CliJob; progress: JobProgress }>();
  private readonly finishedEmitter = new Emitter<{ job: CliJob; outcome: JobOutcome }>();
  private readonly outputEmitter = new Emitter<{ job: CliJob; line: string }>();
  readonly onStarted = this.startedEmitter.event;
  readonly onProgress = this.progressEmitter.event;
  readonly onFinished = this.finishedEmitter.event;
  readonly onOutput = this.outputEmitter.event;

  constructor(private readonly launch: () => JobLaunch) {}

  /** Starts a job. Throws (MissingExecutableError) before spawning when Node cannot be found. */
  start(spec: JobSpec): CliJob {
    if (spec.kind === 'resume' && spec.runDir) {
      const running = this.jobFor(spec.runDir);
      if (running) throw new Error(`${path.basename(spec.runDir)} is already running (${running.spec.title}); stop it before resuming`);
    }
    const job = new CliJob(spec, this.launch());
    job.onOutput((line) => this.outputEmitter.fire({ job, line }));
    job.onProgress((progress) => this.progressEmitter.fire({ job, progress }));
    this.jobs.add(job);
    job.start();
    this.startedEmitter.fire(job);
    void job.done.then((outcome) => {
      this.jobs.delete(job);
      this.finishedEmitter.fire({ job, outcome });
    });
    return job;
  }

  get active(): CliJob[] {
    return [...this.jobs];
  }

  /** The live job writing this run, if the host started it. */
  jobFor(runDir: string): CliJob | undefined {
    const dir = path.resolve(runDir);
    return [...this.jobs].find((j) => j.runDir === dir && (j.spec.kind === 'run' || j.spec.kind === 'resume'));
  }

  /**
   * Stops a run: through its job when the host started it, else by signalling the trainer its run.json
   * names (a run started before a window reload, or from a terminal) — only when that process is on
   * this machine and verified to be the run's own trainer (rundir/liveness.ts), never another program.
   */
  stopRun(runDir: string): StopResult {
    const job = this.jobFor(runDir);
    if (job) {
      const wasStopping = job.stopRequested;
      return job.stop() ? (wasStopping ? 'killed' : 'stopping') : 'not-running';
    }
    let info;
    try {
      info = readRunInfo(runDir);
    } catch {
      return 'not-running';
    }
    return signalTrainer(info, 'SIGTERM');
  }

  /** On shutdown: ask every job to stop after its current step (they finish on their own). */
  stopAll(): number {
    let n = 0;
    for (const job of this.jobs) if (!job.stopRequested && job.stop()) n += 1;
    return n;
  }

  dispose(): void {
    this.stopAll();
    this.startedEmitter.dispose();
    this.progressEmitter.dispose();
    this.finishedEmitter.dispose();
    this.outputEmitter.dispose();
  }
}

export type { JobKind, JobSpec };
