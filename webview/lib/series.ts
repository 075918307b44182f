/**
 * The dashboard's charts as data: which metrics each chart shows, and the points of every series for
 * the runs on screen. Pure, so the numbers can be checked without a browser.
 */
import type { RunData, SweepModeSummary } from '../protocol';

export interface Point {
  x: number;
  y: number;
}

/** The first training step of a round. */
export interface RoundStart {
  round: number;
  step: number;
}

export interface MetricSpec {
  metric: string;
  /** Shown after the run's name when a chart has several metrics per run. */
  label: string;
  /** Line dash, so the roles of one run share its colour but stay apart. */
  dash?: number[];
}

export interface ChartSpec {
  id: string;
  title: string;
  /** Per training step (step events) or per round (round events and nashgap.jsonl). */
  x: 'step' | 'round';
  metrics: MetricSpec[];
  yLabel: string;
  yMin?: number;
  yMax?: number;
  hint: string;
}

const DASHED = [6, 4];

export const DASHBOARD_CHARTS: ChartSpec[] = [
  {
    id: 'nash-gap',
    title: 'Nash gap',
    x: 'round',
    metrics: [{ metric: 'nash_gap', label: 'Nash gap' }],
    yLabel: 'NashConv',
    yMin: 0,
    hint: 'How much the attacker and the defender could each gain by deviating; 0 at an equilibrium. Falling is good.',
  },
  {
    id: 'rewards',
    title: 'Reward per role',
    x: 'step',
    metrics: [
      { metric: 'reward/attacker', label: 'attacker' },
      { metric: 'reward/defender', label: 'defender', dash: DASHED },
    ],
    yLabel: 'mean reward',
    hint: 'Mean reward of each role per step (solid: attacker, dashed: defender).',
  },
  {
    id: 'asr',
    title: 'Jailbreak rate (attack success)',
    x: 'step',
    metrics: [{ metric: 'asr', label: 'jailbreak rate' }],
    yLabel: 'jailbreak rate',
    yMin: 0,
    yMax: 1,
    hint: 'Jailbreaks: share of attacked harmful seeds whose answer the judge labelled harmful (the trainer’s asr).',
  },
  {
    id: 'over-refusal',
    title: 'Over-refusal',
    x: 'step',
    metrics: [{ metric: 'over_refusal', label: 'over-refusal' }],
    yLabel: 'over-refusal rate',
    yMin: 0,
    yMax: 1,
    hint: 'Share of benign seeds the defender refused. A defender that refuses everything wins nothing here.',
  },
  {
    id: 'kl',
    title: 'KL to the anchor',
    x: 'step',
    metrics: [
      { metric: 'kl/attacker', label: 'attacker' },
      { metric: 'kl/defender', label: 'defender', dash: DASHED },
    ],
    yLabel: 'per-token KL',
    yMin: 0,
    hint: 'How far each role’s policy has moved from the frozen base model (solid: attacker, dashed: defender).',
  },
  {
    id: 'diversity',
    title: 'Attack diversity',
    x: 'step',
    metrics: [{ metric: 'self_bleu', label: 'self-BLEU' }],
    yLabel: 'self-BLEU-4',
    yMin: 0,
    yMax: 1,
    hint: 'Self-BLEU of the attacker’s prompts in a step: higher means less diverse attacks.',
  },
];

export interface Series {
  run: string;
  runLabel: string;
  metric: string;
  label: string;
  dash?: number[];
  points: Point[];
  /** An interval around the line (a sweep's), drawn as a band. */
  band?: { low: Point[]; high: Point[] };
}

/**
 * The series of one chart for the given runs: one per run and metric, points sorted by x. `labelOf`
 * names a run (distinct names, from run-labels.ts).
 */
export function seriesFor(chart: ChartSpec, runs: readonly RunData[], labelOf: (run: RunData) => string = (d) => d.info.name): Series[] {
  const out: Series[] = [];
  for (const data of runs) {
    const name = labelOf(data);
    for (const m of chart.metrics) {
      const points = chart.x === 'step' ? stepPoints(data, m.metric) : roundPoints(data, m.metric);
      out.push({
        run: data.run,
        runLabel: name,
        metric: m.metric,
        label: chart.metrics.length > 1 ? `${name} · ${m.label}` : name,
        dash: m.dash,
        points,
      });
    }
  }
  return out;
}

/** A sweep's method as the charts draw it: its curves over seeds, under its row's key and label. */
export interface SweepLine {
  /** The runs-table row's key (its colour). */
  key: string;
  label: string;
  summary: SweepModeSummary;
}

/**
 * The series of a per-round chart for sweeps: per method, the median over seeds as the line and its
 * 95% interval as a band (rounds where the interval is unknown keep a gap in the band). Per-step charts
 * have none: a sweep's steps are not aligned across seeds.
 */
export function sweepSeriesFor(chart: ChartSpec, lines: readonly SweepLine[]): Series[] {
  if (chart.x !== 'round') return [];
  const out: Series[] = [];
  for (const line of lines) {
    for (const m of chart.metrics) {
      const curve = line.summary.curves[m.metric];
      if (!curve) continue;
      const points: Point[] = [];
      const low: Point[] = [];
      const high: Point[] = [];
      for (const p of curve) {
        if (p.median === null) continue;
        points.push({ x: p.round, y: p.median });
        low.push({ x: p.round, y: p.low ?? Number.NaN });
        high.push({ x: p.round, y: p.high ?? Number.NaN });
      }
      const seeds = Math.max(0, ...curve.map((p) => p.n));
      const name = `${line.label} · ${line.summary.mode}, median of ${seeds} seed${seeds === 1 ? '' : 's'}`;
      out.push({ run: line.key, runLabel: name, metric: m.metric, label: chart.metrics.length > 1 ? `${name} · ${m.label}` : name, dash: m.dash, points, band: { low, high } });
    }
  }
  return out;
}

/** Where each round's steps begin, from the run's step events (void attempts are already left out). */
export function roundStarts(data: RunData): RoundStart[] {
  const first = new Map<number, number>();
  for (const e of data.events) {
    if (e.type !== 'step') continue;
    const at = first.get(e.round);
    if (at === undefined || e.step < at) first.set(e.round, e.step);
  }
  return [...first].map(([round, step]) => ({ round, step })).sort((a, b) => a.step - b.step);
}

/**
 * Exponential moving average with TensorBoard's debiasing (the first points are not pulled towards
 * zero): weight 0 returns the points, 0.9 is heavy smoothing.
 */
export function smooth(points: readonly Point[], weight: number): Point[] {
  if (weight <= 0) return [...points];
  let last = 0;
  let n = 0;
  return points.map((p) => {
    last = last * weight + (1 - weight) * p.y;
    n += 1;
    return { x: p.x, y: last / (1 - weight ** n) };
  });
}

function stepPoints(data: RunData, metric: string): Point[] {
  const byStep = new Map<number, number>();
  for (const e of data.events) {
    if (e.type !== 'step') continue;
    const y = e.metrics[metric];
    if (typeof y === 'number' && Number.isFinite(y)) byStep.set(e.step, y);
  }
  return sorted(byStep);
}

/** Round metrics come from `round` events; for the Nash gap, nashgap.jsonl fills rounds they lack. */
function roundPoints(data: RunData, metric: string): Point[] {
  const byRound = new Map<number, number>();
  if (metric === 'nash_gap') for (const r of data.nashgap) byRound.set(r.round, r.nash_gap);
  for (const e of data.events) {
    if (e.type !== 'round') continue;
    const y = e.metrics[metric];
    if (typeof y === 'number' && Number.isFinite(y)) byRound.set(e.round, y);
  }
  return sorted(byRound);
}

function sorted(m: Map<number, number>): Point[] {
  return [...m].sort((a, b) => a[0] - b[0]).map(([x, y]) => ({ x, y }));
}
