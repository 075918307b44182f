/**
 * The sweeps of seeds in the runs folder (a sweep.json and one run directory per seed and method:
 * docs/run-directory.md, "Sweeps"), summarised for the dashboard: per method, the median and 95%
 * interval over seeds of each headline metric before training and after, and the per-round curves the
 * charts draw as a median line with a band. Everything is read through `SweepReader`, so the panels
 * show exactly the comparison `absp run --seeds` prints. Reads only.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { effectiveStatus, roundFolderNumbers, runLayout } from '../rundir';
import { runLabels } from './run-labels';
import { HEADLINE_METRICS } from '../rundir/metrics';
import { sweepLayout } from '../rundir/layout';
import { SweepError, SweepReader, isSweepDir, readSweepInfo } from '../rundir/sweep';
import { SWEEP_CURVE_METRICS, type SweepOverview } from '../../webview/protocol';

/** The sweep folders directly inside the runs folder, sorted by name (their ids start with the time). */
export function listSweepDirs(runsFolder: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(runsFolder, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
  return names
    .map((n) => path.resolve(runsFolder, n))
    .filter((dir) => isSweepDir(dir))
    .sort()
    .reverse();
}

/**
 * What a sweep's overview depends on: its manifest, its summary, and each planned run's run.json and
 * complete rounds. Appended step records do not change it, so a live sweep is summarised again once a
 * round or a run ends, not at every step.
 */
export function sweepStamp(dir: string): string {
  const stat = (file: string) => {
    try {
      const st = fs.statSync(file);
      return `${st.size}:${st.mtimeMs}`;
    } catch {
      return '-';
    }
  };
  const layout = sweepLayout(dir);
  let status = 'unreadable';
  try {
    // A sweep whose process died still says "running" in sweep.json: its liveness is part of the stamp.
    status = effectiveStatus(readSweepInfo(dir));
  } catch {
    /* the overview says why */
  }
  const parts = [status, stat(layout.sweepJson), stat(layout.summary)];
  let runs: string[] = [];
  try {
    runs = fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch {
    /* unreadable: the overview says so */
  }
  for (const run of runs) {
    const rd = path.join(dir, run);
    const rounds = roundFolderNumbers(rd).map((n) => `${n}${fs.existsSync(runLayout(rd).roundJson(n)) ? '+' : ''}`);
    parts.push(`${run}=${stat(runLayout(rd).runJson)}/${rounds.join(',')}`);
  }
  return parts.join('|');
}

/**
 * A sweep's row data for the panels: per method the statistics over the seeds whose run completed
 * (before → after of the headline metrics), and the curves over the seeds that reached each round. A
 * sweep that cannot be read is an overview with the reason, never an exception.
 */
export function summariseSweep(dir: string, label = path.basename(dir)): SweepOverview {
  const key = path.resolve(dir);
  let reader: SweepReader;
  try {
    reader = SweepReader.open(key);
  } catch (e) {
    const kind = e instanceof SweepError && /newer than/.test(e.message) ? 'newer-format' : e instanceof SweepError ? 'corrupt' : 'unreadable';
    return { sweep: key, label, id: path.basename(key), name: path.basename(key), created: null, status: null, seeds: [], modes: [], error: { kind, message: (e as Error).message } };
  }
  const info = reader.info;
  const runs = reader.runs();
  const summary = reader.summary();
  const finite = (v: number) => (Number.isFinite(v) ? v : null);
  const curves = SWEEP_CURVE_METRICS.map((metric) => [metric, reader.curves(metric, runs)] as const);
  const headline = (record: Record<string, { median: number | null; low: number | null; high: number | null; n: number }>) =>
    Object.fromEntries(HEADLINE_METRICS.filter((m) => record[m.key]).map((m) => [m.key, record[m.key]]));
  return {
    sweep: key,
    label,
    id: info.id,
    name: info.name,
    created: info.created,
    status: effectiveStatus(info),
    seeds: info.seeds,
    modes: info.modes.map((mode) => {
      const stats = summary.modes.find((m) => m.mode === mode);
      const mine = runs.filter((r) => r.mode === mode);
      return {
        mode,
        seeds: stats?.seeds ?? [],
        planned: mine.length,
        started: mine.filter((r) => r.status !== 'absent').length,
        before: stats ? headline(stats.before) : {},
        after: stats ? headline(stats.after) : {},
        curves: Object.fromEntries(
          curves.map(([metric, byMode]) => [
            metric,
            (byMode.find((c) => c.mode === mode)?.points ?? []).map((p) => ({ round: p.round, median: finite(p.median), low: finite(p.low), high: finite(p.high), n: p.n })),
          ]),
        ),
      };
    }),
    error: null,
  };
}

/** The overviews with distinct labels, "name · start time", as runs are named (run-labels.ts). */
export function labelSweeps(overviews: readonly SweepOverview[]): SweepOverview[] {
  const labels = runLabels(overviews.map((o) => ({ run: o.sweep, name: o.name, created: o.created })));
  return overviews.map((o) => ({ ...o, label: labels.get(o.sweep) ?? o.label }));
}
