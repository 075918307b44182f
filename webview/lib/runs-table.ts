/**
 * The dashboard's runs table as data: one row per run, and one per method of a sweep of seeds (the
 * median over its seeds with a 95% interval), the headline round metrics before training (round 0)
 * and after (the last complete round), and the sort. Pure, so the numbers and the order are checked
 * without a browser.
 */
import { HEADLINE_METRICS, type RoundMetricSpec } from '../protocol';
import type { RunSummary, SweepOverview } from '../protocol';
import { num, pct } from './format';

export interface MetricCell {
  before: number | null;
  after: number | null;
  /** The round the after value comes from. */
  afterRound: number | null;
  /** A 95% interval of `after` (a sweep's), when there is one. */
  interval?: [number, number];
  /** Seeds behind a sweep's median (after). */
  n?: number;
}

export interface RunsTableRow {
  /** The run key (a sweep's key for a sweep row). */
  key: string;
  kind: 'run' | 'sweep';
  label: string;
  mode: string | null;
  status: string | null;
  roundsCompleted: number | null;
  roundsPlanned: number | null;
  /** Why the run cannot be opened; such rows cannot be chosen. */
  error: RunSummary['error'];
  cells: Record<string, MetricCell>;
  /** A sweep row's sweep and method. */
  sweep?: { key: string; mode: string; seeds: number; planned: number; started: number };
}

export const RUNS_TABLE_METRICS: readonly RoundMetricSpec[] = HEADLINE_METRICS;

export type SortKey = 'label' | 'mode' | 'status' | 'rounds' | string;
export interface Sort {
  key: SortKey;
  dir: 'asc' | 'desc';
}

const value = (s: RunSummary, which: 'before' | 'after', key: string): number | null => {
  const v = s[which]?.metrics[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
};

export function runRows(summaries: readonly RunSummary[], labelOf: (run: string) => string): RunsTableRow[] {
  return summaries.map((s) => ({
    key: s.run,
    kind: 'run' as const,
    label: labelOf(s.run),
    mode: s.mode,
    status: s.status,
    roundsCompleted: s.rounds_completed,
    roundsPlanned: s.rounds_planned,
    error: s.error,
    cells: Object.fromEntries(RUNS_TABLE_METRICS.map((m) => [m.key, { before: value(s, 'before', m.key), after: value(s, 'after', m.key), afterRound: s.after?.round ?? null }])),
  }));
}

/** The key of a sweep's row for one method: distinct from every run key (those are folders). */
export function sweepRowKey(sweep: string, mode: string): string {
  return `${sweep}#${mode}`;
}

const finite = (v: number | null | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * One row per method of each sweep: the median over the seeds whose run completed, before → after,
 * with the 95% interval of the after value. A sweep that cannot be read is one row with the reason.
 */
export function sweepRows(sweeps: readonly SweepOverview[]): RunsTableRow[] {
  return sweeps.flatMap((s): RunsTableRow[] => {
    if (s.error || s.modes.length === 0) {
      return [{ key: sweepRowKey(s.sweep, ''), kind: 'sweep', label: s.label, mode: null, status: s.status, roundsCompleted: null, roundsPlanned: null, error: s.error ?? { kind: 'other', message: 'the sweep plans no runs' }, cells: {} }];
    }
    return s.modes.map((m) => ({
      key: sweepRowKey(s.sweep, m.mode),
      kind: 'sweep' as const,
      label: s.label,
      mode: m.mode,
      status: s.status,
      roundsCompleted: null,
      roundsPlanned: null,
      error: null,
      sweep: { key: s.sweep, mode: m.mode, seeds: m.seeds.length, planned: m.planned, started: m.started },
      cells: Object.fromEntries(
        RUNS_TABLE_METRICS.map((spec) => {
          const before = m.before[spec.key];
          const after = m.after[spec.key];
          const low = finite(after?.low);
          const high = finite(after?.high);
          const cell: MetricCell = { before: finite(before?.median), after: finite(after?.median), afterRound: null, n: after?.n ?? 0 };
          if (low !== null && high !== null) cell.interval = [low, high];
          return [spec.key, cell];
        }),
      ),
    }));
  });
}

/** Rates read as percentages; the Nash gap and exploitability are game values, read as numbers. */
export function formatMetric(key: string, v: number | null): string {
  if (key === 'nash_gap' || key === 'exploitability/defender') return num(v, 3);
  return pct(v, 1);
}

/** "[12.0%, 31.0%]" */
export function formatInterval(key: string, [low, high]: [number, number]): string {
  return `[${formatMetric(key, low)}, ${formatMetric(key, high)}]`;
}

/** "82.0% → 27.0%", or just the after value when nothing was measured before. */
export function formatCell(key: string, c: MetricCell): string {
  const interval = c.interval ? ` ${formatInterval(key, c.interval)}` : '';
  if (c.before === null || c.afterRound === 0) return `${formatMetric(key, c.after)}${interval}`;
  return `${formatMetric(key, c.before)} → ${formatMetric(key, c.after)}${interval}`;
}

/** Whether training moved the metric the good way, the bad way, or not at all (or it is unknown). */
export function trend(spec: RoundMetricSpec, c: MetricCell): 'better' | 'worse' | 'same' | null {
  if (c.before === null || c.after === null || c.afterRound === 0) return null;
  if (Math.abs(c.after - c.before) < 1e-9) return 'same';
  const down = c.after < c.before;
  return (spec.better === 'lower') === down ? 'better' : 'worse';
}

/**
 * Rows in the chosen order: by label, mode, status, rounds, or a metric's after value. Missing values
 * and runs that cannot be opened go last whatever the direction; ties keep the host's order (newest
 * first).
 */
export function sortRows(rows: readonly RunsTableRow[], sort: Sort | null): RunsTableRow[] {
  if (!sort) return [...rows];
  const keyOf = (r: RunsTableRow): string | number | null => {
    if (sort.key === 'label') return r.label.toLowerCase();
    if (sort.key === 'mode') return r.mode;
    if (sort.key === 'status') return r.status;
    if (sort.key === 'rounds') return r.sweep ? r.sweep.seeds : r.roundsCompleted;
    return r.cells[sort.key]?.after ?? null;
  };
  const sign = sort.dir === 'asc' ? 1 : -1;
  return rows
    .map((r, i) => ({ r, i, k: r.error ? null : keyOf(r) }))
    .sort((a, b) => {
      if (a.k === null || b.k === null) return a.k === null && b.k === null ? a.i - b.i : a.k === null ? 1 : -1;
      const c = typeof a.k === 'number' && typeof b.k === 'number' ? a.k - b.k : String(a.k).localeCompare(String(b.k));
      return c !== 0 ? sign * c : a.i - b.i;
    })
    .map((x) => x.r);
}

/** Clicking a column: sort by it (metrics start with the better end first), again to reverse. */
export function nextSort(current: Sort | null, key: SortKey): Sort {
  if (current?.key === key) return { key, dir: current.dir === 'asc' ? 'desc' : 'asc' };
  const spec = RUNS_TABLE_METRICS.find((m) => m.key === key);
  return { key, dir: spec ? (spec.better === 'lower' ? 'asc' : 'desc') : 'asc' };
}
