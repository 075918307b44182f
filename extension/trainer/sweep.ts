/**
 * A sweep: the experiment and its baselines once per seed, one run directory each, in one sweep
 * folder (docs/run-directory.md, "Sweeps"). Runs go seed by seed (the method, then each baseline), so
 * a stopped sweep already holds paired runs. Resuming skips completed runs, resumes an unfinished one
 * from its last complete round, and starts the rest; at the end the comparison across seeds is
 * written as summary.json.
 */
import * as path from 'node:path';
import { RunReader, RunDirError } from '../rundir/reader';
import { SweepReader, SweepWriter } from '../rundir/sweep';
import type { Mode, SweepRun, SweepSummary } from '../rundir/schema';
import { RunConfig } from './run-config';

/** Runs one experiment: a new run `runId` in `config.runs_dir`, or the run in `resumeDir`. */
export type RunOne = (config: RunConfig, target: { runId: string } | { resumeDir: string }, run: SweepRun) => Promise<{ dir: string; status: 'completed' | 'stopped' }>;

export interface SweepOptions {
  /** The base config; each run gets its seed and mode. */
  config: RunConfig;
  seeds: number[];
  /** The method first, then its baselines (default: config.mode, then config.baselines). */
  modes?: Mode[];
  sweepId?: string;
  /** Continue this sweep instead of creating one in config.runs_dir. */
  resumeDir?: string;
  runOne: RunOne;
  log?: (line: string) => void;
}

export interface SweepResult {
  dir: string;
  status: 'completed' | 'stopped';
  summary: SweepSummary;
}

/** The modes a config's sweep compares: its mode, then its baselines. */
export function sweepModes(c: RunConfig): Mode[] {
  return [c.mode, ...c.baselines.filter((m) => m !== c.mode)];
}

/** The config of one run of a sweep. */
export function sweepRunConfig(base: RunConfig, sweepDir: string, run: SweepRun): RunConfig {
  const { seeds: _seeds, ...rest } = base;
  return { ...rest, seed: run.seed, mode: run.mode, name: `${base.name}-seed-${run.seed}`, runs_dir: sweepDir, baselines: [] };
}

export async function runSweep(o: SweepOptions): Promise<SweepResult> {
  const log = o.log ?? (() => {});
  const writer = o.resumeDir
    ? SweepWriter.resume(o.resumeDir)
    : SweepWriter.create(path.resolve(o.config.runs_dir), {
        id: o.sweepId,
        name: o.config.name,
        seeds: o.seeds,
        modes: o.modes ?? sweepModes(o.config),
        config: { ...o.config, seeds: o.seeds } as unknown as Record<string, unknown>,
      });
  const total = writer.info.runs.length;
  try {
    for (const [i, run] of writer.info.runs.entries()) {
      const dir = writer.runDir(run);
      const existing = runStatus(dir);
      const config = sweepRunConfig(o.config, writer.dir, run);
      const label = `run ${i + 1}/${total}: seed ${run.seed}, ${run.mode}`;
      if (existing === 'completed') {
        log(`${label}: already complete`);
        continue;
      }
      log(existing === null ? `${label}` : `${label}: resuming`);
      const result = await o.runOne(config, existing === null ? { runId: run.id } : { resumeDir: dir }, run);
      if (result.status === 'stopped') {
        writer.setStatus('stopped', `stopped during ${label}; absp run --resume ${writer.dir} continues it`);
        return { dir: writer.dir, status: 'stopped', summary: SweepReader.open(writer.dir).summary() };
      }
    }
    const summary = SweepReader.open(writer.dir).summary();
    writer.writeSummary(summary);
    writer.setStatus('completed');
    return { dir: writer.dir, status: 'completed', summary };
  } catch (e) {
    writer.setStatus('paused', `${(e as Error).message}; absp run --resume ${writer.dir} continues the sweep`);
    throw e;
  }
}

/** The recorded status of a run folder, or null if no run was started there. */
function runStatus(dir: string): string | null {
  try {
    return RunReader.open(dir).info.status;
  } catch (e) {
    if (e instanceof RunDirError && e.kind === 'not-a-run') return null;
    throw e;
  }
}
