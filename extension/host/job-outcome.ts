/**
 * What a finished `absp` child process means for the user: read from the run's own record (run.json's
 * status and reason, which the trainer writes even when it fails) and, where there is no run or the
 * process died without a word, from its exit code and the last lines it printed. Pure.
 */
import type { RunInfo } from '../rundir';

export type OutcomeStatus = 'completed' | 'stopped' | 'paused' | 'failed' | 'crashed';

export interface JobOutcome {
  status: OutcomeStatus;
  /** The run the job was about (the last one it created, for a run with baselines). */
  runDir: string | null;
  /** One paragraph for a notification. */
  message: string;
  exitCode: number | null;
  signal: string | null;
}

export interface OutcomeInput {
  title: string;
  exitCode: number | null;
  signal: string | null;
  /** run.json of each run the job created or worked on, as read after the exit (null: unreadable). */
  runs: { dir: string; info: RunInfo | null }[];
  /** The last lines of the process's output. */
  logTail: readonly string[];
  /** The process could not be started at all (spawn error). */
  spawnError?: string;
  /** For jobs that work on a run without creating one (cross-play, eval): that run. */
  targetDir?: string;
  /** The user asked it to stop. */
  stopRequested?: boolean;
}

/** The line that explains a failure: the CLI's own `absp: …` error line, else the last line printed. */
export function lastErrorLine(lines: readonly string[]): string | null {
  for (let i = lines.length - 1; i >= 0; i--) if (/^absp: /.test(lines[i])) return lines[i].slice('absp: '.length);
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i].trim()) return lines[i].trim();
  return null;
}

function howItEnded(exitCode: number | null, signal: string | null): string {
  if (signal) return `was killed by ${signal}`;
  return `exited with code ${exitCode}`;
}

export function describeOutcome(o: OutcomeInput): JobOutcome {
  const base = { exitCode: o.exitCode, signal: o.signal };
  if (o.spawnError) return { ...base, status: 'failed', runDir: o.targetDir ?? null, message: `${o.title} could not start: ${o.spawnError}` };
  const worst = pickRun(o.runs);
  const err = lastErrorLine(o.logTail);
  if (worst?.info) {
    const { info, dir } = worst;
    const name = info.id;
    const reason = info.reason ? `: ${info.reason}` : '';
    switch (info.status) {
      case 'completed':
        if (o.exitCode === 0 || o.exitCode === null) {
          return { ...base, status: 'completed', runDir: dir, message: `Run ${name} completed (${info.rounds_completed} of ${info.rounds_planned} rounds).` };
        }
        // The run finished but something after it (a summary, a baseline) failed.
        return { ...base, status: 'failed', runDir: dir, message: `Run ${name} completed, but ${o.title} then failed${err ? `: ${err}` : ` (it ${howItEnded(o.exitCode, o.signal)})`}.` };
      case 'stopped':
        return { ...base, status: 'stopped', runDir: dir, message: `Run ${name} stopped after ${info.rounds_completed} of ${info.rounds_planned} rounds${reason}. Resume continues it.` };
      case 'paused':
        return { ...base, status: 'paused', runDir: dir, message: `Run ${name} paused${reason}. Fix the cause and resume it.` };
      case 'failed':
        return { ...base, status: 'failed', runDir: dir, message: `Run ${name} failed${reason}.` };
      case 'running': {
        // The process is gone but never recorded an end: it was killed or crashed mid-step.
        const why = o.stopRequested && o.signal === 'SIGKILL' ? 'was stopped at once' : howItEnded(o.exitCode, o.signal);
        return {
          ...base,
          status: 'crashed',
          runDir: dir,
          message: `Run ${name}: the trainer ${why} without recording why${err ? ` (last output: ${err})` : ''}. Its completed rounds are intact; resume continues from the last one.`,
        };
      }
    }
  }
  if (worst && !worst.info) {
    return { ...base, status: 'failed', runDir: worst.dir, message: `${o.title} ${howItEnded(o.exitCode, o.signal)} and its run.json cannot be read${err ? `: ${err}` : ''}.` };
  }
  // No run was created (a bad config, a missing model) or the job does not create one (cross-play, eval).
  if (o.exitCode === 0) return { ...base, status: 'completed', runDir: o.targetDir ?? null, message: `${o.title} finished.` };
  if (o.stopRequested) return { ...base, status: 'stopped', runDir: o.targetDir ?? null, message: `${o.title} was stopped.` };
  return { ...base, status: 'failed', runDir: o.targetDir ?? null, message: `${o.title} failed${err ? `: ${err}` : ` (it ${howItEnded(o.exitCode, o.signal)})`}` };
}

/** The run that decides the outcome: the first one that did not complete, else the last. */
function pickRun(runs: OutcomeInput['runs']): OutcomeInput['runs'][number] | undefined {
  return runs.find((r) => !r.info || r.info.status !== 'completed') ?? runs[runs.length - 1];
}
