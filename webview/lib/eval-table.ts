/**
 * The dashboard's evaluation table: one row per `absp eval` result of the runs shown, one column per
 * metric. Rates carry their 95% interval and sample size; a metric without an interval (a count, such
 * as unparsable judge answers) is shown as the number with its n.
 */
import type { EvalMetric, RunData } from '../protocol';
import { pct } from './format';

export interface EvalRow {
  run: string;
  runLabel: string;
  name: string;
  /** The data file's name (the full path is the cell's tooltip). */
  data: string;
  dataPath: string;
  created: string;
  cells: Record<string, string>;
}

/** Known metrics first, in a reading order; others after them, alphabetically. */
const ORDER = ['attack_success', 'refusal_harmful', 'over_refusal', 'capability_exact_match', 'unparsable'];

export const METRIC_TITLES: Record<string, string> = {
  attack_success: 'attack success',
  refusal_harmful: 'refusal (harmful)',
  over_refusal: 'over-refusal (benign)',
  capability_exact_match: 'capability (exact match)',
  unparsable: 'unparsable judge answers',
};

export function formatEvalMetric(m: EvalMetric | undefined): string {
  if (!m) return '—';
  const n = m.n !== undefined ? `n=${m.n}` : '';
  if (m.value === null) return n ? `— (${n})` : '—';
  if (m.ci95) return `${pct(m.value, 1)} [${pct(m.ci95[0], 1)}, ${pct(m.ci95[1], 1)}]${n ? ` ${n}` : ''}`;
  return `${Number(m.value.toPrecision(4))}${n ? ` of ${m.n}` : ''}`;
}

function evalColumns(runs: readonly RunData[]): string[] {
  const keys = new Set(runs.flatMap((r) => r.evals.flatMap((e) => Object.keys(e.result.metrics))));
  const known = ORDER.filter((k) => keys.has(k));
  return [...known, ...[...keys].filter((k) => !ORDER.includes(k)).sort()];
}

/** The table's metric columns (every metric any result has) and its rows, oldest result first per run. */
export function evalTable(runs: readonly RunData[], labelOf: (run: RunData) => string): { columns: string[]; rows: EvalRow[] } {
  const columns = evalColumns(runs);
  const rows = runs.flatMap((r) =>
    [...r.evals]
      .sort((a, b) => a.result.created.localeCompare(b.result.created))
      .map((e) => ({
        run: r.run,
        runLabel: labelOf(r),
        name: e.name,
        data: e.result.data.split(/[\\/]/).pop() ?? e.result.data,
        dataPath: e.result.data,
        created: e.result.created,
        cells: Object.fromEntries(columns.map((c) => [c, formatEvalMetric(e.result.metrics[c])])),
      })),
  );
  return { columns, rows };
}
