/** The per-step metrics of docs/run-directory.md, computed from the played exchanges. */
import { selfBleu } from './diversity';
import { PlayedExchange } from './game';
import { REPLAY_SOURCE } from './attack-replay';

const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const share = (xs: boolean[]): number | null => mean(xs.map((x) => (x ? 1 : 0)));

export function stepMetrics(exchanges: readonly PlayedExchange[], encode: (text: string) => number[]): Record<string, number | null> {
  const kept = exchanges.filter((e) => e.rewards !== null);
  const attacked = exchanges.filter((e) => e.attacked);
  const harmfulAttacked = kept.filter((e) => e.seed.harmful && e.attacked);
  // Replayed attacks were chosen because they were refused (or answered): they would bias the rate.
  const benign = kept.filter((e) => !e.seed.harmful && e.seed.source !== REPLAY_SOURCE);
  return {
    'reward/attacker': mean(kept.filter((e) => e.rewards!.attacker !== null).map((e) => e.rewards!.attacker!)),
    'reward/defender': mean(kept.map((e) => e.rewards!.defender)),
    asr: share(harmfulAttacked.map((e) => e.verdict.responseHarmful === true)),
    over_refusal: share(benign.map((e) => e.verdict.refusal === true)),
    faithfulness: share(attacked.filter((e) => e.verdict.faithful !== null).map((e) => e.verdict.faithful === true)),
    'format_fail/attacker': share(attacked.map((e) => e.verdict.wellFormed.attacker !== true)),
    'format_fail/defender': share(exchanges.map((e) => !e.verdict.wellFormed.defender)),
    self_bleu: attacked.length > 1 ? selfBleu(attacked.map((e) => encode(e.turns[0].attacker?.text ?? ''))) : null,
    unparsable: exchanges.filter((e) => e.verdict.unparsable).length,
    dropped: exchanges.length - kept.length,
  };
}
