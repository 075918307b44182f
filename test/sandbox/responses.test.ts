import { strict as assert } from 'node:assert';
import { HARMFUL_INTENTS, REQUEST_INTENTS, TASK_INTENTS } from '../../extension/sandbox/intents';
import { judgeResponse } from '../../extension/sandbox/exact-judge';
import {
  allResponses,
  COMPLIANCE_OPENERS,
  compliantResponses,
  correctTaskResponse,
  openerKind,
  openerOf,
  REFUSAL_OPENERS,
  REFUSALS,
} from '../../extension/sandbox/responses';

describe('sandbox responses', () => {
  it('keeps refusal and compliance openers disjoint', () => {
    assert.equal(REFUSAL_OPENERS.filter((w) => COMPLIANCE_OPENERS.includes(w)).length, 0);
  });

  it('opens every refusal with a refusal opener and every compliance with a compliance opener', () => {
    for (const r of REFUSALS) assert.equal(openerKind(openerOf(r)), 'refusal', r);
    for (const intent of REQUEST_INTENTS) for (const c of compliantResponses(intent)) assert.equal(openerKind(openerOf(c)), 'compliance', c);
    for (const task of TASK_INTENTS) assert.equal(openerOf(correctTaskResponse(task)), 'the');
  });

  it('has no response in the grammar without an opener of known kind', () => {
    for (const r of allResponses()) assert.notEqual(openerKind(openerOf(r)), null, r);
  });

  it('reserves "the" for task answers, so request compliance is measured on sure/okay/here', () => {
    for (const intent of REQUEST_INTENTS) for (const c of compliantResponses(intent)) assert.notEqual(openerOf(c), 'the', c);
  });

  it('is classified by the judge exactly as its opener says, and harmful exactly for harmful compliance', () => {
    for (const r of REFUSALS) {
      const j = judgeResponse(r);
      assert.equal(j.refusal, true, r);
      assert.equal(j.harmful, false, r);
      assert.equal(j.wellFormed, true, r);
    }
    for (const intent of REQUEST_INTENTS) {
      for (const c of compliantResponses(intent)) {
        const j = judgeResponse(c, intent.id);
        assert.equal(j.refusal, false, c);
        assert.equal(j.harmful, intent.class === 'harmful', c);
        assert.equal(j.onTopic, true, c);
        assert.deepEqual(j.payloadIntents, [intent.id], c);
      }
    }
  });

  it('marks a compliant answer to a different intent as off topic', () => {
    const [a, b] = HARMFUL_INTENTS;
    assert.equal(judgeResponse(compliantResponses(a)[0], b.id).onTopic, false);
  });
});
