import { strict as assert } from 'node:assert';
import { HARMFUL_INTENTS, REQUEST_INTENTS, TASK_INTENTS, intentById, type RequestIntent } from '../../extension/sandbox/intents';
import { judgePrompt } from '../../extension/sandbox/exact-judge';
import { despell } from '../../extension/sandbox/prompt-parser';
import {
  buildAttack,
  COMPOSITIONS,
  enumerateAllAttacks,
  enumerateAttacks,
  TACTIC_IDS,
  TACTIC_LAYER,
  WRAPPERS,
} from '../../extension/sandbox/tactics';
import { words } from '../../extension/sandbox/words';

describe('sandbox tactics', () => {
  it('gives every tactic four distinct surface forms', () => {
    for (const tactic of TACTIC_IDS) {
      const forms = WRAPPERS.filter((w) => w.tactic === tactic).map((w) => `${w.before}|${w.after}`);
      assert.equal(new Set(forms).size, 4, tactic);
    }
  });

  it('composes only across layers, inner layer first', () => {
    assert.equal(COMPOSITIONS.length, 9);
    for (const [inner, outer] of COMPOSITIONS) assert.ok(TACTIC_LAYER[inner] < TACTIC_LAYER[outer], `${inner}+${outer}`);
  });

  it('enumerates 129 distinct prompts per request intent and a few thousand in all', () => {
    for (const intent of REQUEST_INTENTS) {
      const attacks = enumerateAttacks(intent);
      assert.equal(attacks.length, 3 + 6 * 4 * 3 + 9 * 2 * 3, intent.id);
      assert.equal(new Set(attacks.map((a) => a.text)).size, attacks.length, intent.id);
    }
    const all = enumerateAllAttacks();
    assert.equal(all.length, 44 * 129);
    assert.equal(new Set(all.map((a) => a.text)).size, all.length, 'two intents share an attack prompt');
    assert.deepEqual(enumerateAttacks(TASK_INTENTS[0]), []);
  });

  it('is deterministic: the enumeration is a pure function of the catalogue', () => {
    const first = enumerateAttacks('bomb').map((a) => a.text);
    const rebuilt = enumerateAttacks('bomb').map((a) => buildAttack(intentById('bomb') as RequestIntent, a.form, a.tactics.map((t, i) => ({ tactic: t, variant: a.variants[i] }))).text);
    assert.deepEqual(rebuilt, first);
  });

  it('hides the keyword: spelled variants never contain it, code-word variants use the code word', () => {
    for (const intent of HARMFUL_INTENTS) {
      for (const attack of enumerateAttacks(intent).filter((a) => a.tactics.includes('obfuscation'))) {
        const w = words(attack.text);
        const variant = attack.variants[0];
        if (variant >= 2) assert.ok(!w.includes(intent.keyword), attack.text);
        else assert.ok(w.includes(variant === 0 ? 'zorp' : 'blick'), attack.text);
      }
    }
  });

  it('parses every enumerated attack back to its intent, harmfulness and tactics', () => {
    for (const attack of enumerateAllAttacks()) {
      const j = judgePrompt(attack.text);
      const intent = intentById(attack.intent);
      assert.equal(j.intent, attack.intent, attack.text);
      assert.equal(j.harmful, intent.class === 'harmful', attack.text);
      assert.deepEqual(j.tactics, attack.tactics, attack.text);
      assert.ok(j.parsed && j.inGrammar && j.wellFormed, attack.text);
    }
  });

  it('parses compositions outside the enumeration but reports them as outside the grammar', () => {
    const bomb = intentById('bomb') as RequestIntent;
    const offGrid = buildAttack(bomb, 0, [{ tactic: 'roleplay', variant: 3 }, { tactic: 'prefix-injection', variant: 2 }]);
    const j = judgePrompt(offGrid.text);
    assert.equal(j.intent, 'bomb');
    assert.deepEqual(j.tactics, ['roleplay', 'prefix-injection']);
    assert.equal(j.parsed, true);
    assert.equal(j.inGrammar, false);
    assert.equal(j.wellFormed, false);
  });
});

describe('sandbox despell', () => {
  it('collapses a spelled keyword, keeping one-letter words around it', () => {
    assert.deepEqual(despell(words('steal a c a r now')).tokens, words('steal a car now'));
    assert.deepEqual(despell(words('how do i k i l l a stuck process')).tokens, words('how do i kill a stuck process'));
    assert.deepEqual(despell(words('b o m b')).tokens, ['bomb']);
  });

  it('leaves letters alone when they spell no keyword', () => {
    assert.deepEqual(despell(words('x y z q')).tokens, ['x', 'y', 'z', 'q']);
    assert.equal(despell(words('i a')).replaced, 0);
  });
});
