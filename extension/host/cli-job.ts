/**
 * One `absp` command run as a child process: a training run, a resume, cross-play or an evaluation.
 * The extension host only starts, watches and stops it; all training happens in the child.
 *
 * The child writes its output to a log file (not a pipe) and runs in its own process group, so that it
 * does not depend on the extension host staying alive: when the editor closes, the host asks it to stop
 * (SIGTERM — the trainer finishes the current step and marks the run `stopped`), and the child can do
 * so even after the host is gone. Nothing is left running for ever: a child whose host crashed without
 * asking is still visible as a running run after the next start and can be stopped from the Runs view.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RunReader, listRuns, readRunInfo, type RunFollower, type RunInfo } from '../rundir';
import { Emitter } from './emitter';
import { describeProgress, type RunPhase } from './run-progress';
import type { NodeCommand } from './executables';
import { describeOutcome, type JobOutcome } from './job-outcome';
import { LogTail } from './log-tail';

export type JobKind = 'run' | 'resume' | 'crossplay' | 'eval';

export interface JobSpec {
  kind: JobKind;
  /** For messages: "Run experiment.absp.json", "Resume 2026-…", "Cross-play of 2 runs". */
  title: string;
  /** The `absp` arguments, e.g. ['run', 'cfg.absp.json', '--runs-dir', DIR]. */
  args: string[];
  cwd: string;
  /** For `run`: the folder the new run directory appears in. */
  runsFolder?: string;
  /** For resume, cross-play and eval: the run worked on. */
  runDir?: string;
  /** Added to the child's environment (e.g. ABSP_TORCH_PYTHON for a torch run). */
  env?: Record<string, string>;
}

export interface JobLaunch {
  node: NodeCommand;
  /** bin/absp.js of the extension. */
  cliEntry: string;
  /** Folder for the child's log file. */
  logDir: string;
  env?: NodeJS.ProcessEnv;
  /** How often the job looks at its run directory and log (ms). */
  pollMs?: number;
}

export interface JobProgress {
  runDir: string | null;
  round: number | null;
  roundsPlanned: number | null;
  step: number | null;
  totalSteps: number | null;
  /** 0…1 when known. */
  fraction: number | null;
  /** One line for the status bar: "round 2/4 · step 13/40", or what happens before step 1. */
  text: string;
  /** What the run is doing (run-progress.ts); null for jobs that are not runs. */
  phase: RunPhase | null;
}

export type JobState = 'running' | 'stopping' | 'exited';

let jobCounter = 0;

export class CliJob {
  readonly id: string;
  readonly logFile: string;
  readonly started = Date.now();
  private child: ChildProcess | null = null;
  private tail: LogTail;
  private timer: NodeJS.Timeout | null = null;
  private runDirs: string[] = [];
  private follower: { dir: string; follower: RunFollower; stepsPerRound: number | null; roundsPlanned: number | null; measures: boolean; crossplay: boolean } | null = null;
  private lastStep: { round: number; step: number; asr: number | null } | null = null;
  private roundsComplete = new Set<number>();
  private startedRun = false;
  private resumedRun = false;
  private stopRequests = 0;
  private resolveDone!: (o: JobOutcome) => void;
  private currentState: JobState = 'running';
  private currentProgress: JobProgress;

  private readonly outputEmitter = new Emitter<string>();
  private readonly progressEmitter = new Emitter<JobProgress>();
  /** Each line the child prints. */
  readonly onOutput = this.outputEmitter.event;
  readonly onProgress = this.progressEmitter.event;
  /** Resolves once the process has exited and its outcome is known; never rejects. */
  readonly done: Promise<JobOutcome>;
  outcome: JobOutcome | null = null;

  constructor(
    readonly spec: JobSpec,
    private readonly launch: JobLaunch,
  ) {
    jobCounter += 1;
    this.id = `${new Date(this.started).toISOString().replace(/[:.]/g, '-')}-${spec.kind}-${jobCounter}`;
    fs.mkdirSync(launch.logDir, { recursive: true });
    this.logFile = path.join(launch.logDir, `${this.id}.log`);
    this.tail = new LogTail(this.logFile);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    if (spec.runDir) this.runDirs.push(path.resolve(spec.runDir));
    const runs = spec.kind === 'run' || spec.kind === 'resume';
    this.currentProgress = { runDir: this.runDir, round: null, roundsPlanned: null, step: null, totalSteps: null, fraction: null, text: runs ? 'starting absp…' : 'starting…', phase: runs ? 'starting' : null };
  }

  get state(): JobState {
    return this.currentState;
  }

  /** Which Node runs the child, for the log. */
  get node(): string {
    return this.launch.node.description;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The run directory the job is writing (for a run: known once the trainer has created it). */
  get runDir(): string | null {
    return this.runDirs[this.runDirs.length - 1] ?? null;
  }

  get progress(): JobProgress {
    return this.currentProgress;
  }

  /** Spawns the child. Errors of the spawn itself end the job with a `failed` outcome (see `done`). */
  start(): this {
    const out = fs.openSync(this.logFile, 'a');
    try {
      fs.writeSync(out, `$ absp ${this.spec.args.map(quote).join(' ')}\n`);
      this.child = spawn(this.launch.node.command, [this.launch.cliEntry, ...this.spec.args], {
        cwd: this.spec.cwd,
        env: { ...(this.launch.env ?? process.env), ...this.launch.node.env, ...this.spec.env },
        stdio: ['ignore', out, out],
        detached: true,
        windowsHide: true,
      });
    } finally {
      fs.closeSync(out);
    }
    this.child.once('error', (e) => void this.finish(null, null, e.message));
    this.child.once('exit', (code, signal) => void this.finish(code, signal));
    this.timer = setInterval(() => this.poll(), this.launch.pollMs ?? 500);
    this.timer.unref?.();
    return this;
  }

  /**
   * First call: SIGTERM, after which the trainer completes its current step, marks the run `stopped`
   * and exits. A second call: SIGKILL, at once (the run is then `interrupted`; its complete rounds are
   * kept and resume continues from the last one). Returns false when the job had already ended.
   */
  stop(): boolean {
    if (this.currentState === 'exited' || !this.child?.pid) return false;
    this.stopRequests += 1;
    this.currentState = 'stopping';
    try {
      this.child.kill(this.stopRequests === 1 ? 'SIGTERM' : 'SIGKILL');
    } catch {
      return false;
    }
    this.emitProgress();
    return true;
  }

  get stopRequested(): boolean {
    return this.stopRequests > 0;
  }

  /** Reads new output, finds the run directory and updates progress. Called on a timer; safe to call any time. */
  poll(flush = false): void {
    for (const line of this.tail.read(flush)) this.outputEmitter.fire(line);
    this.discoverRunDir();
    this.followProgress();
  }

  private discoverRunDir(): void {
    if (this.spec.kind !== 'run' || !this.spec.runsFolder || !this.child?.pid) return;
    let listed;
    try {
      listed = listRuns(this.spec.runsFolder);
    } catch {
      return;
    }
    const pid = this.child.pid;
    const here = os.hostname();
    // The trainer records its pid in run.json: that, and a creation time after our start, is our run.
    const mine = listed
      .filter((l) => l.info && l.info.pid === pid && (l.info.host === undefined || l.info.host === here) && Date.parse(l.info.created) >= this.started - 5000)
      .sort((a, b) => a.info!.created.localeCompare(b.info!.created))
      .map((l) => l.dir);
    for (const dir of mine) if (!this.runDirs.includes(dir)) this.runDirs.push(dir);
  }

  private followProgress(): void {
    const dir = this.runDir;
    if (!dir || (this.spec.kind !== 'run' && this.spec.kind !== 'resume')) return;
    try {
      if (this.follower?.dir !== dir) {
        const reader = RunReader.open(dir);
        const config = reader.config();
        const evaluation = (config?.evaluation ?? {}) as { nash_gap?: unknown; crossplay?: unknown };
        this.follower = {
          dir,
          follower: reader.follow(),
          stepsPerRound: typeof config?.steps_per_round === 'number' ? config.steps_per_round : null,
          roundsPlanned: typeof config?.rounds === 'number' ? config.rounds : reader.info.rounds_planned,
          // The trainer's defaults: both on unless the config turns them off.
          measures: evaluation.nash_gap !== false,
          crossplay: evaluation.crossplay !== false,
        };
        this.lastStep = null;
      }
      const delta = this.follower.follower.poll();
      if (delta.reset) {
        this.lastStep = null;
        this.roundsComplete.clear();
        this.startedRun = false;
        this.resumedRun = false;
      }
      const info = delta.info ?? readInfoOrNull(dir);
      for (const e of delta.events) {
        if (e.type === 'step') this.lastStep = { round: e.round, step: e.step, asr: e.metrics.asr ?? null };
        if (e.type === 'start') this.startedRun = true;
        // A resume event of this attempt: the trainer is loading the last complete round's adapters.
        if (e.type === 'resume' && (!info || e.attempt === info.attempt)) {
          this.startedRun = true;
          this.resumedRun = true;
        }
      }
      for (const r of delta.rounds) this.roundsComplete.add(r.round);
      this.updateProgress();
    } catch {
      // A run directory being created may be briefly unreadable; the next poll tries again.
    }
  }

  private updateProgress(): void {
    const f = this.follower;
    const p = describeProgress({
      hasRunDir: this.runDir !== null,
      started: this.startedRun,
      resumed: this.resumedRun,
      roundsPlanned: f?.roundsPlanned ?? null,
      stepsPerRound: f?.stepsPerRound ?? null,
      measures: f?.measures ?? false,
      crossplay: f?.crossplay ?? false,
      roundsComplete: [...this.roundsComplete],
      lastStep: this.lastStep,
    });
    const next = { runDir: this.runDir, round: p.round, roundsPlanned: f?.roundsPlanned ?? null, step: p.step, totalSteps: p.totalSteps, fraction: p.fraction, text: p.text, phase: p.phase };
    if (JSON.stringify(next) === JSON.stringify(this.currentProgress)) return;
    this.currentProgress = next;
    this.emitProgress();
  }

  private emitProgress(): void {
    const text = this.currentState === 'stopping' && !this.currentProgress.text.startsWith('stopping') ? `stopping after this step… ${this.currentProgress.text}` : this.currentProgress.text;
    this.progressEmitter.fire({ ...this.currentProgress, text });
  }

  private async finish(exitCode: number | null, signal: NodeJS.Signals | null, spawnError?: string): Promise<void> {
    if (this.currentState === 'exited') return;
    this.currentState = 'exited';
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.poll(true);
    const creates = this.spec.kind === 'run' || this.spec.kind === 'resume';
    this.outcome = describeOutcome({
      title: this.spec.title,
      exitCode,
      signal,
      runs: creates ? this.runDirs.map((dir) => ({ dir, info: readInfoOrNull(dir) })) : [],
      targetDir: this.spec.runDir ? path.resolve(this.spec.runDir) : undefined,
      logTail: this.tail.recent,
      spawnError,
      stopRequested: this.stopRequested,
    });
    this.resolveDone(this.outcome);
  }
}

function readInfoOrNull(dir: string): RunInfo | null {
  try {
    return readRunInfo(dir);
  } catch {
    return null;
  }
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
