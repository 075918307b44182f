/**
 * The weights a rollout sampled with must be the weights the trainer last updated: each generation
 * reports the fingerprint of the policy that sampled it, and it must equal the fingerprint the
 * trainer holds for that policy (from its creation, loading or last training step). A mismatch —
 * a stale policy after a failed weight update, ranks out of step — stops the run with an error
 * instead of training on rollouts from the wrong policy.
 */
import { EngineError, GeneratedText, PolicyName } from '../engine/policy-engine';

export class FingerprintMismatchError extends EngineError {}

export function checkRolloutFingerprints(
  rows: readonly { policy: PolicyName }[],
  generations: readonly GeneratedText[],
  expected: ReadonlyMap<string, string>,
): void {
  rows.forEach((row, i) => {
    if (row.policy === null) return;
    const want = expected.get(row.policy);
    if (want === undefined) return;
    const got = generations[i]?.fingerprint;
    if (got === undefined) throw new FingerprintMismatchError(`rollout row ${i} of policy ${row.policy} came back without the fingerprint of the weights that sampled it`);
    if (got !== want) {
      throw new FingerprintMismatchError(
        `rollout row ${i} was sampled by policy ${row.policy} with weights ${got ?? 'of the frozen base'}, but the trainer's current ${row.policy} is ${want}: the engine sampled a stale or different policy; the run is stopped so that no update uses these rollouts`,
      );
    }
  });
}
