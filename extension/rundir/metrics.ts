/**
 * The round metrics that tables and comparisons show (docs/run-directory.md names them all): each
 * with its label and the direction that is better. The end-of-run table and a sweep's comparison
 * both read this list.
 */
import type { SweepMetric } from './schema';

export type MetricInfo = SweepMetric;

export const ROUND_METRICS: readonly MetricInfo[] = [
  { key: 'asr/best_response', label: 'best-response attack success', better: 'lower' },
  { key: 'asr/trained_attacker', label: "trained attacker's attack success", better: 'lower' },
  { key: 'refusal/plain_harmful', label: 'refusal of plain harmful requests', better: 'higher' },
  { key: 'over_refusal', label: 'over-refusal (benign)', better: 'lower' },
  { key: 'over_refusal/looks_harmful', label: 'over-refusal (harmful-looking benign)', better: 'lower' },
  { key: 'capability', label: 'capability (task accuracy)', better: 'higher' },
  { key: 'exploitability/defender', label: 'defender exploitability', better: 'lower' },
  { key: 'nash_gap', label: 'Nash gap (NashConv)', better: 'lower' },
];

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
export const SWEEP_METRICS: readonly MetricInfo[] = [...ROUND_METRICS, ...DERIVED_METRICS];
