/** The end-of-run table: before (round 0) and after (last round) for each run of the job. */
import { RunReader } from '../rundir/reader';
import { ROUND_METRICS } from '../rundir/metrics';
import type { MedianIntervalRecord, SweepSummary } from '../rundir/schema';

const SUMMARY_ROWS = ROUND_METRICS;

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

// ---------------------------------------------------------------------------------------------------
// A sweep's comparison across seeds

const SWEEP_TABLE = ['asr/best_response', 'nash_gap', 'over_refusal', 'over_refusal/looks_harmful', 'capability', 'asr/trained_attacker', 'self_consistency_gap', 'exploitability/defender', 'parameters/trainable'];
const SWEEP_CHANGES = ['asr/best_response', 'nash_gap', 'over_refusal', 'over_refusal/looks_harmful', 'capability'];

/** How a metric reads: Nash gaps as numbers, parameter counts as integers, the rest as percentages. */
function formatValue(key: string, v: number | null, signed = false): string {
  if (v === null || !Number.isFinite(v)) return '-';
  const sign = signed && v > 0 ? '+' : '';
  if (key === 'nash_gap') return `${sign}${v.toFixed(3)}`;
  if (key.startsWith('parameters/')) return `${sign}${Math.round(v).toLocaleString('en-US')}`;
  return `${sign}${(100 * v).toFixed(1)}${signed ? ' pts' : '%'}`;
}

function formatInterval(key: string, m: MedianIntervalRecord | undefined, signed = false): string {
  if (!m || m.median === null) return '-';
  const inner = (v: number | null) => formatValue(key, v, signed).replace(/%| pts/, '');
  return `${formatValue(key, m.median, signed)} [${inner(m.low)}, ${inner(m.high)}]`;
}

/** The sweep's comparison as a table: per mode the median over seeds and its 95% interval, then the paired comparison. */
export function formatSweepSummary(s: SweepSummary, dir?: string): string {
  const label = (key: string) => s.metrics.find((m) => m.key === key)?.label ?? key;
  const lines: string[] = [];
  const counts = s.modes.map((m) => `${m.mode} ${m.seeds.length}`).join(', ');
  lines.push(`Sweep ${s.sweep}: seeds ${s.seeds.join(', ')} (completed runs: ${counts}).`);
  lines.push('Final round: median over seeds [95% bootstrap interval].', '');
  const width = Math.max(...[...SWEEP_TABLE, ...SWEEP_CHANGES].map((k) => label(k).length + 10));
  const col = 32;
  lines.push(['metric'.padEnd(width), ...s.modes.map((m) => m.mode.padEnd(col))].join('  '));
  for (const key of SWEEP_TABLE) lines.push([label(key).padEnd(width), ...s.modes.map((m) => formatInterval(key, m.after[key]).padEnd(col))].join('  '));
  lines.push([`best-response attack success halved`.padEnd(width), ...s.modes.map((m) => `on ${m.weak_spot_halved} of ${m.seeds.length} seeds`.padEnd(col))].join('  '));
  for (const key of SWEEP_CHANGES) lines.push([`change in ${label(key)}`.padEnd(width), ...s.modes.map((m) => formatInterval(key, m.change[key], true).padEnd(col))].join('  '));
  for (const b of s.modes.slice(1)) {
    lines.push('', `${s.main} − ${b.mode}, seed by seed: median difference [95% interval]; seeds won`);
    for (const p of s.paired.filter((x) => x.b === b.mode && SWEEP_TABLE.includes(x.metric) && !x.metric.startsWith('parameters/'))) {
      lines.push(`${label(p.metric).padEnd(width)}  ${formatInterval(p.metric, p.difference, true).padEnd(col)}  ${s.main} ${p.wins_a}, ${b.mode} ${p.wins_b}, tied ${p.ties}`);
    }
  }
  if (dir) lines.push('', `sweep directory: ${dir}`);
  return lines.join('\n');
}
