/**
 * Whether a run's trainer is still alive, and signalling it. A run.json may come from someone else,
 * so its `pid` is never trusted on its own: a process counts as the run's trainer only when it is on
 * this machine (`host`), is not pid 0 or 1 (or a group, which a negative pid would name), started at
 * the moment the trainer recorded (`pid_start`: boot and start time of the process), and runs `absp run`
 * (its command line). Only such a process is ever signalled; a stale pid now used by another program
 * is neither signalled nor taken for a live trainer (so it does not block resume).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RunInfo, RunStatus } from './schema';

/** A status as a reader should show it: `interrupted` is a `running` run whose process is gone. */
export type EffectiveStatus = RunStatus | 'interrupted';

export interface LivenessProbe {
  /** Overrides the check that the run's recorded trainer is alive and is that trainer (tests). */
  isAlive?: (pid: number) => boolean;
  hostname?: string;
}

/** Whether any process has this pid (kill 0); says nothing about which program it is. */
export function isPidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readProc(file: string): string | null {
  try {
    // /proc files report size 0; read them in a loop with a small bound.
    const fd = fs.openSync(file, 'r');
    try {
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const buf = Buffer.alloc(4096);
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n <= 0) break;
        chunks.push(buf.subarray(0, n));
        total += n;
        if (total > 1 << 20) break;
      }
      return Buffer.concat(chunks).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
}

function ps(pid: number, field: 'lstart' | 'command'): string | null {
  try {
    const out = execFileSync('ps', ['-o', `${field}=`, '-p', String(pid)], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return out || null;
  } catch {
    return null;
  }
}

/**
 * When a process started, as a token that differs for every process ever given this pid: on Linux the
 * boot id and the start time in clock ticks (/proc/<pid>/stat, field 22); elsewhere `ps`'s start time.
 */
export function processStartToken(pid: number): string | null {
  if (!Number.isSafeInteger(pid) || pid <= 1) return null;
  if (process.platform === 'linux') {
    const stat = readProc(`/proc/${pid}/stat`);
    if (stat === null) return null;
    // The command name (field 2) is in parentheses and may hold spaces or ")": fields follow the last ")".
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = rest[19];
    if (!start || !/^\d+$/.test(start)) return null;
    const boot = (readProc('/proc/sys/kernel/random/boot_id') ?? '').trim();
    return `linux:${boot}:${start}`;
  }
  const lstart = ps(pid, 'lstart');
  return lstart ? `ps:${lstart}` : null;
}

/** The process's command line (argv), or null when it cannot be read. */
export function processCommandLine(pid: number): string[] | null {
  if (!Number.isSafeInteger(pid) || pid <= 1) return null;
  if (process.platform === 'linux') {
    const raw = readProc(`/proc/${pid}/cmdline`);
    if (raw === null) return null;
    return raw.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
  }
  const cmd = ps(pid, 'command');
  return cmd ? cmd.split(/\s+/) : null;
}

/** `absp run …` as node, Electron-as-node or npx starts it: the absp entry point, then `run`. */
export function isTrainerCommand(argv: readonly string[]): boolean {
  const entry = argv.findIndex((a) => ['absp.js', 'absp', 'cli.js'].includes(path.basename(a)));
  return entry >= 0 && argv.slice(entry + 1).includes('run');
}

/** This process's start token, recorded in run.json next to its pid. */
export function ownStartToken(): string | null {
  return processStartToken(process.pid);
}

/**
 * The `pid_start` field a manifest records for its writer (only this process's own can be known).
 * Always present, undefined when unknown, so that spread over an earlier writer's manifest it never
 * leaves that writer's token next to the new pid.
 */
export function startTokenField(pid: number = process.pid): { pid_start: string | undefined } {
  return { pid_start: (pid === process.pid ? ownStartToken() : null) ?? undefined };
}

export type TrainerCheck =
  | { state: 'alive' }
  | { state: 'gone'; why: string }
  /** On another machine, or a run.json that does not say which: nothing here can be checked. */
  | { state: 'elsewhere'; host: string | null };

/** Whether the trainer run.json names is alive here and is that trainer (see the header comment). */
export function checkTrainer(info: Pick<RunInfo, 'pid' | 'host' | 'pid_start'>, probe: LivenessProbe = {}): TrainerCheck {
  const pid = info.pid;
  if (pid === null || !Number.isSafeInteger(pid) || pid <= 1) return { state: 'gone', why: 'run.json names no process' };
  const here = probe.hostname ?? os.hostname();
  if (info.host === undefined) return { state: 'elsewhere', host: null };
  if (info.host !== here) return { state: 'elsewhere', host: info.host };
  if (probe.isAlive) return probe.isAlive(pid) ? { state: 'alive' } : { state: 'gone', why: `process ${pid} is gone` };
  const token = processStartToken(pid);
  if (token === null) return { state: 'gone', why: `process ${pid} is gone` };
  if (info.pid_start !== undefined && token !== info.pid_start) return { state: 'gone', why: `process ${pid} is another program that started later (the pid was reused)` };
  // The process that wrote run.json is this one (a writer in the same process, as tests use).
  if (pid === process.pid) return info.pid_start === undefined || token === info.pid_start ? { state: 'alive' } : { state: 'gone', why: 'pid reused' };
  const argv = processCommandLine(pid);
  if (argv === null || !isTrainerCommand(argv)) return { state: 'gone', why: `process ${pid} is not an absp trainer (${argv ? argv.slice(0, 3).join(' ') : 'command line unreadable'})` };
  return { state: 'alive' };
}

/**
 * `interrupted` for a run (or a sweep: sweep.json records the same fields) that says it is running but
 * whose trainer is gone. A run recorded on another
 * machine, or one whose run.json does not name its machine, cannot be checked from here and keeps its
 * recorded status.
 */
export function effectiveStatus(info: Pick<RunInfo, 'status' | 'pid' | 'host' | 'pid_start'>, probe: LivenessProbe = {}): EffectiveStatus {
  if (info.status !== 'running') return info.status;
  return checkTrainer(info, probe).state === 'gone' ? 'interrupted' : 'running';
}

export type SignalResult = 'signalled' | 'not-running' | 'elsewhere';

/**
 * Signals the run's own trainer, and nothing else: it must pass checkTrainer, must not be this
 * process, and is signalled by its positive pid (never a group).
 */
export function signalTrainer(info: RunInfo, signal: 'SIGTERM' | 'SIGKILL' | 'SIGINT', probe: LivenessProbe = {}): SignalResult {
  if (info.status !== 'running') return 'not-running';
  const check = checkTrainer(info, probe);
  if (check.state === 'elsewhere') return 'elsewhere';
  if (check.state === 'gone' || info.pid === null || info.pid === process.pid) return 'not-running';
  try {
    process.kill(info.pid, signal);
    return 'signalled';
  } catch {
    return 'not-running';
  }
}
