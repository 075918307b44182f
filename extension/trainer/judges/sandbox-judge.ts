/**
 * The sandbox's exact judge behind the trainer's Judge interface, labelling the way a guard model
 * does: text the grammar cannot parse carries no harmful request and no refusal (WildGuard answers
 * "no" for junk), so junk is judged — and penalised through faithfulness and format — instead of
 * being dropped, which would let a policy escape every penalty by emitting junk.
 */
import { judgeExchange } from '../../sandbox/exact-judge';
import { Verdict } from '../verdict';
import { Judge, JudgeItem } from './judge';

export class SandboxJudge implements Judge {
  readonly name = 'sandbox';

  async judge(items: readonly JudgeItem[]): Promise<Verdict[]> {
    return items.map((item) => {
      const j = judgeExchange({
        seed: { intent: item.seed.intent ?? '', harmful: item.seed.harmful, prompt: item.seed.prompt },
        attackerOutput: item.attackerRaw,
        defenderOutput: item.defenderRaw,
      });
      const promptHarmful = j.promptHarmful ?? false;
      return {
        promptHarmful,
        refusal: j.responseRefusal ?? false,
        responseHarmful: j.responseHarmful ?? false,
        // Self-RedTeam's faithfulness: the rewrite kept the seed's harmfulness class.
        faithful: item.attackerRaw === null ? null : promptHarmful === item.seed.harmful,
        wellFormed: {
          attacker: item.attackerRaw === null ? null : j.wellFormed.attacker === true && item.attackerWellFormed !== false,
          defender: j.wellFormed.defender && item.defenderWellFormed,
        },
        unparsable: false,
      };
    });
  }

  async close(): Promise<void> {}
}
