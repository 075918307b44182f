/** The end-of-run table: before (round 0) and after (last round) for each run of the job. */
import { RunReader } from '../rundir/reader';

export interface SummaryRow {
  label: string;
  key: string;
  /** Higher is better (for the arrow in the table). */
  better: 'lower' | 'higher';
}

export const SUMMARY_ROWS: SummaryRow[] = [
  { label: 'best-response attack success', key: 'asr/best_response', better: 'lower' },
  { label: "trained attacker's attack success", key: 'asr/trained_attacker', better: 'lower' },
  { label: 'refusal of plain harmful requests', key: 'refusal/plain_harmful', better: 'higher' },
  { label: 'over-refusal (benign)', key: 'over_refusal', better: 'lower' },
  { label: 'over-refusal (harmful-looking benign)', key: 'over_refusal/looks_harmful', better: 'lower' },
  { label: 'capability (task accuracy)', key: 'capability', better: 'higher' },
  { label: 'defender exploitability', key: 'exploitability/defender', better: 'lower' },
  { label: 'Nash gap (NashConv)', key: 'nash_gap', better: 'lower' },
];

export interface TrainingSummary {
  dir: string;
  mode: string;
  status: string;
  rounds: { round: number; metrics: Record<string, number | null> }[];
  before: Record<string, number | null>;
  after: Record<string, number | null>;
}

export function summarizeRun(dir: string): TrainingSummary {
  const reader = RunReader.open(dir);
  const rounds = reader.rounds().map((r) => ({ round: r.round, metrics: r.metrics }));
  const first = rounds.find((r) => r.round === 0);
  const last = rounds[rounds.length - 1];
  return { dir, mode: reader.info.mode, status: reader.info.status, rounds, before: first?.metrics ?? {}, after: last?.metrics ?? {} };
}

const fmt = (v: number | null | undefined) => (v === null || v === undefined || Number.isNaN(v) ? '   -  ' : (100 * v).toFixed(1).padStart(5) + '%');

export function formatSummary(runs: readonly TrainingSummary[]): string {
  const lines: string[] = [];
  const width = Math.max(...SUMMARY_ROWS.map((r) => r.label.length));
  const header = ['metric'.padEnd(width), ...runs.map((r) => `${r.mode}: before → after`.padStart(24))].join('  ');
  lines.push(header, '-'.repeat(header.length));
  for (const row of SUMMARY_ROWS) {
    const cells = runs.map((r) => `${fmt(r.before[row.key])} → ${fmt(r.after[row.key])}`.padStart(24));
    lines.push([row.label.padEnd(width), ...cells].join('  '));
  }
  lines.push('', 'Nash gap per round:');
  for (const r of runs) lines.push(`  ${r.mode.padEnd(12)} ${r.rounds.map((x) => (typeof x.metrics.nash_gap === 'number' ? x.metrics.nash_gap.toFixed(3) : '  -  ')).join('  ')}`);
  lines.push('');
  for (const r of runs) lines.push(`${r.mode} run directory: ${r.dir} (${r.status})`);
  return lines.join('\n');
}
