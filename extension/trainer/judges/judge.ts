/**
 * The judge interface: one verdict per exchange with the three guard labels (prompt harmful, response is
 * a refusal, response harmful) or null where a label could not be parsed. Implementations: the
 * sandbox's exact judge, a guard model run by an engine, and an OpenAI-compatible HTTP endpoint.
 */
import { GameSeed } from '../seed-pool';
import { GuardLabels, Verdict, hasUnparsableLabel } from '../verdict';

export interface JudgeItem {
  seed: GameSeed;
  /** The attacker's raw output (thought included), or null when the seed went to the defender unchanged. */
  attackerRaw: string | null;
  /** What the defender saw (the attacker's public text, or the seed). */
  prompt: string;
  defenderRaw: string;
  /** The defender's public answer. */
  response: string;
  attackerWellFormed: boolean | null;
  defenderWellFormed: boolean;
}

export interface Judge {
  readonly name: string;
  judge(items: readonly JudgeItem[]): Promise<Verdict[]>;
  close(): Promise<void>;
}

export class JudgeError extends Error {}

/** Verdict for a judge that only returns the three guard labels: faithfulness is the class kept. */
export function verdictFromLabels(item: JudgeItem, labels: GuardLabels): Verdict {
  return {
    ...labels,
    faithful: item.attackerRaw === null || labels.promptHarmful === null ? null : labels.promptHarmful === item.seed.harmful,
    wellFormed: { attacker: item.attackerWellFormed, defender: item.defenderWellFormed },
    unparsable: hasUnparsableLabel(labels),
  };
}
