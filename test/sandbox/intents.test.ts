import { strict as assert } from 'node:assert';
import { ALL_INTENTS, BENIGN_INTENTS, HARMFUL_INTENTS, LOOKS_HARMFUL_INTENTS, REQUEST_INTENTS, TASK_INTENTS, NUMBER_WORDS } from '../../extension/sandbox/intents';
import { allResponses, compliantResponses, REFUSALS } from '../../extension/sandbox/responses';
import { ROLE_TEXTS } from '../../extension/sandbox/roles';
import { benignSeeds, capabilitySeeds, gameSeeds, harmfulSeeds } from '../../extension/sandbox/seeds';
import { enumerateAllAttacks } from '../../extension/sandbox/tactics';
import { indexOfSequence, wordKey, words } from '../../extension/sandbox/words';

describe('sandbox intents', () => {
  it('has the catalogue sizes the design asks for', () => {
    assert.equal(HARMFUL_INTENTS.length, 20);
    assert.equal(BENIGN_INTENTS.length, 12);
    assert.equal(LOOKS_HARMFUL_INTENTS.length, 12);
    assert.ok(TASK_INTENTS.length >= 60, `only ${TASK_INTENTS.length} tasks`);
  });

  it('uses unique ids and plain forms that no two intents share', () => {
    assert.equal(new Set(ALL_INTENTS.map((i) => i.id)).size, ALL_INTENTS.length);
    const forms = ALL_INTENTS.flatMap((i) => i.forms.map((f) => wordKey(words(f))));
    assert.equal(new Set(forms).size, forms.length);
  });

  it('puts the keyword exactly once in every form of a request, so obfuscation has one word to hide', () => {
    for (const intent of REQUEST_INTENTS) {
      assert.ok(intent.forms.length >= 3, intent.id);
      for (const form of intent.forms) {
        assert.equal(words(form).filter((w) => w === intent.keyword).length, 1, `${intent.id}: "${form}"`);
      }
    }
  });

  it('gives every task a single-token answer that is actually correct', () => {
    for (const task of TASK_INTENTS) {
      assert.equal(words(task.answer).length, 1, task.id);
      const sum = /^what is (\d) plus (\d)\?$/.exec(task.forms[0]);
      const after = /^what comes after (\w+)\?$/.exec(task.forms[0]);
      if (sum) assert.equal(task.answer, String(Number(sum[1]) + Number(sum[2])), task.id);
      else if (after) assert.equal(NUMBER_WORDS.indexOf(task.answer as never), NUMBER_WORDS.indexOf(after[1] as never) + 1, task.id);
      else assert.fail(`unrecognised task ${task.id}`);
    }
  });

  it('keeps payload phrases unique to their intent: absent from prompts, refusals, role texts and other answers', () => {
    const prompts = [...ALL_INTENTS.flatMap((i) => i.forms), ...enumerateAllAttacks().map((a) => a.text), ...ROLE_TEXTS, ...REFUSALS].map(words);
    for (const intent of REQUEST_INTENTS) {
      const others = REQUEST_INTENTS.filter((o) => o !== intent).flatMap(compliantResponses).map(words);
      for (const phrase of intent.payload) {
        const p = words(phrase);
        assert.ok(
          [...prompts, ...others].every((text) => indexOfSequence(text, p) < 0),
          `payload "${phrase}" of ${intent.id} appears outside its own answers`,
        );
      }
    }
    // Sanity for the check above: a payload phrase is found in its own answers.
    assert.ok(allResponses().some((r) => indexOfSequence(words(r), words(HARMFUL_INTENTS[0].payload[0])) >= 0));
  });
});

describe('sandbox seeds', () => {
  it('has one seed per plain form, labelled by class', () => {
    assert.equal(harmfulSeeds().length, 60);
    assert.equal(benignSeeds().length, 72);
    assert.equal(gameSeeds().length, 132);
    assert.ok(harmfulSeeds().every((s) => s.harmful && s.class === 'harmful'));
    assert.ok(benignSeeds().every((s) => !s.harmful && (s.class === 'benign' || s.class === 'looks-harmful')));
    assert.equal(new Set(gameSeeds().map((s) => s.id)).size, 132);
  });

  it('measures capability on every task, across all three wordings', () => {
    const seeds = capabilitySeeds();
    assert.equal(seeds.length, TASK_INTENTS.length);
    assert.ok(seeds.every((s) => s.class === 'task' && !s.harmful));
    const formIndices = new Set(seeds.map((s) => s.id.split('#')[1]));
    assert.deepEqual([...formIndices].sort(), ['0', '1', '2']);
  });
});
