/**
 * The round metrics that tables and comparisons show (docs/run-directory.md names them all): each
 * with its label and the direction that is better. The end-of-run table and a sweep's comparison
 * both read this list.
 */
import type { SweepMetric } from './schema';

export type MetricInfo = SweepMetric;

/** A round metric as tables show it: a short column title, and whether the dashboard's runs table has it. */
export interface RoundMetricSpec extends MetricInfo {
  /** A short column title. */
  short: string;
  /** A column of the dashboard's runs table. */
  headline: boolean;
}

/**
 * The round metrics a run is judged by, in reading order, with the direction that is better: the
 * table `absp run` prints at the end, a sweep's comparison and the dashboard's runs table (the
 * `headline` ones) read this one list.
 */
export const ROUND_METRICS: readonly RoundMetricSpec[] = [
  { key: 'asr/best_response', label: 'best-response attack success', short: 'best-response ASR', better: 'lower', headline: true },
  { key: 'asr/trained_attacker', label: "trained attacker's attack success", short: 'trained-attacker ASR', better: 'lower', headline: false },
  { key: 'refusal/plain_harmful', label: 'refusal of plain harmful requests', short: 'refusal (plain harmful)', better: 'higher', headline: false },
  { key: 'over_refusal', label: 'over-refusal (benign)', short: 'over-refusal', better: 'lower', headline: true },
  { key: 'over_refusal/looks_harmful', label: 'over-refusal (harmful-looking benign)', short: 'over-refusal (looks harmful)', better: 'lower', headline: false },
  { key: 'capability', label: 'capability (task accuracy)', short: 'capability', better: 'higher', headline: true },
  { key: 'exploitability/defender', label: 'defender exploitability', short: 'exploitability', better: 'lower', headline: true },
  { key: 'nash_gap', label: 'Nash gap (NashConv)', short: 'Nash gap', better: 'lower', headline: true },
];

/** The runs table's columns. */
export const HEADLINE_METRICS: readonly RoundMetricSpec[] = ROUND_METRICS.filter((m) => m.headline);

/**
 * Metrics a sweep derives for each run from its rounds and cross-play (not written by the trainer):
 * - `self_consistency_gap`: best-response attack success minus the trained attacker's, the gap
 *   between beating the best attacker and beating one's own (Self-RedTeam's collapse makes it large);
 * - `crossplay/later_attacker_gain`: the last attacker's attack success against the initial defender
 *   minus the initial attacker's (positive: later attackers beat earlier defenders);
 * - `crossplay/later_defender_gain`: the initial attacker's success against the initial defender minus
 *   against the last defender (positive: later defenders hold against earlier attackers).
 */
export const DERIVED_METRICS: readonly MetricInfo[] = [
  { key: 'self_consistency_gap', label: 'best-response minus trained-attacker attack success', better: 'lower' },
  { key: 'crossplay/later_attacker_gain', label: 'cross-play: last attacker vs initial defender, gain over the initial attacker', better: 'higher' },
  { key: 'crossplay/later_defender_gain', label: 'cross-play: initial attacker vs last defender, drop from the initial defender', better: 'higher' },
  { key: 'parameters/trainable', label: 'trainable parameters', better: 'lower' },
];

/** The metrics a sweep compares: the round metrics, then the derived ones. */
export const SWEEP_METRICS: readonly MetricInfo[] = [...ROUND_METRICS.map(({ key, label, better }) => ({ key, label, better })), ...DERIVED_METRICS];
