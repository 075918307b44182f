/**
 * What a judge says about one exchange: the three guard labels (prompt harmful, response is a refusal,
 * response harmful), with null for a label it could not parse, plus whether the attacker's rewrite
 * kept the seed's intent and whether each role's output was well-formed.
 */
export interface GuardLabels {
  promptHarmful: boolean | null;
  refusal: boolean | null;
  responseHarmful: boolean | null;
}

export interface Verdict extends GuardLabels {
  /** The rewrite kept the seed's harmfulness class (null when the seed was not attacked). */
  faithful: boolean | null;
  wellFormed: { attacker: boolean | null; defender: boolean };
  /** A label the rewards need is null: the exchange is dropped from the update and counted. */
  unparsable: boolean;
}

/** A guard label is missing: the exchange cannot be rewarded. */
export function hasUnparsableLabel(l: GuardLabels): boolean {
  return l.promptHarmful === null || l.refusal === null || l.responseHarmful === null;
}
