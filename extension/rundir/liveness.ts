/** Whether a run's trainer is still alive, as far as this machine can tell. */
import * as os from 'node:os';
import type { RunInfo, RunStatus } from './schema';

/** A status as a reader should show it: `interrupted` is a `running` run whose process is gone. */
export type EffectiveStatus = RunStatus | 'interrupted';

export interface LivenessProbe {
  isAlive?: (pid: number) => boolean;
  hostname?: string;
}

export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * `interrupted` for a run (or a sweep: sweep.json records the same three fields) that says it is
 * running but whose process is gone. A run recorded on another machine (its host differs) cannot be
 * checked from here and keeps its recorded status.
 */
export function effectiveStatus(info: Pick<RunInfo, 'status' | 'pid' | 'host'>, probe: LivenessProbe = {}): EffectiveStatus {
  if (info.status !== 'running') return info.status;
  const here = probe.hostname ?? os.hostname();
  if (info.host !== undefined && info.host !== here) return 'running';
  if (info.pid === null) return 'interrupted';
  return (probe.isAlive ?? isPidAlive)(info.pid) ? 'running' : 'interrupted';
}

