import { strict as assert } from 'node:assert';
import { CORPUS_MIX, corpusJsonl, corpusStatistics, generateCorpus, renderCorpus, type CorpusDialogue, type RateEstimate } from '../../extension/sandbox/corpus';
import { HARMFUL_INTENTS } from '../../extension/sandbox/intents';
import { allResponses } from '../../extension/sandbox/responses';
import { attackerMessages, defenderMessages } from '../../extension/sandbox/roles';
import { gameSeeds } from '../../extension/sandbox/seeds';
import { enumerateAllAttacks } from '../../extension/sandbox/tactics';
import {
  ATTACKER_TARGETS,
  declaredBestResponseSuccess,
  DEFENDER_TARGETS,
  vulnerabilityTable,
  VULNERABILITY_LAYOUT,
} from '../../extension/sandbox/targets';
import { MAX_SEQUENCE_TOKENS, renderChat, sandboxTokenizer, SPECIAL_TOKENS } from '../../extension/sandbox/vocabulary';

/** Within four standard errors of a binomial proportion: fails on a real deviation, not on noise. */
function assertNear(estimate: RateEstimate, target: number, what: string): void {
  assert.ok(estimate.n >= 200, `${what}: only ${estimate.n} samples`);
  const se = Math.sqrt((target * (1 - target)) / estimate.n);
  const tolerance = Math.max(4 * se, 1e-9);
  assert.ok(Math.abs(estimate.rate - target) <= tolerance, `${what}: measured ${estimate.rate.toFixed(4)} over ${estimate.n}, target ${target} ± ${tolerance.toFixed(4)}`);
}

describe('sandbox vulnerability table', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    assert.deepEqual(vulnerabilityTable(3), vulnerabilityTable(3));
    assert.notDeepEqual(vulnerabilityTable(3).byIntent, vulnerabilityTable(4).byIntent);
  });

  it('follows the declared layout: role-play and prefix injection each break half, three intents resist all', () => {
    const table = vulnerabilityTable(1);
    const count = (tactic: string) => Object.values(table.byIntent).filter((ts) => ts.includes(tactic as never)).length;
    assert.equal(count('roleplay'), VULNERABILITY_LAYOUT.roleplay.length);
    assert.equal(count('roleplay'), HARMFUL_INTENTS.length / 2);
    assert.equal(count('prefix-injection'), HARMFUL_INTENTS.length / 2);
    assert.equal(Object.values(table.byIntent).filter((ts) => ts.length === 0).length, 3);
    assert.deepEqual(Object.keys(table.byIntent).sort(), HARMFUL_INTENTS.map((i) => i.id).sort());
  });

  it('declares a jailbreakable base model', () => {
    assert.ok(Math.abs(declaredBestResponseSuccess(vulnerabilityTable(1)) - (17 * 0.8 + 3 * 0.1) / 20) < 1e-12);
  });
});

describe('sandbox corpus', () => {
  const seed = 11;
  const table = vulnerabilityTable(seed);
  let corpus: CorpusDialogue[];

  before(() => {
    corpus = generateCorpus({ seed, dialogues: 12_000 });
  });

  it('is a pure function of its seed', () => {
    const again = generateCorpus({ seed, dialogues: 500 });
    assert.equal(corpusJsonl(again), corpusJsonl(corpus.slice(0, 500)));
    assert.notEqual(corpusJsonl(generateCorpus({ seed: seed + 1, dialogues: 500 })), corpusJsonl(again));
  });

  it('writes JSONL lines holding only chat messages', () => {
    const lines = corpusJsonl(corpus.slice(0, 50)).split('\n');
    assert.equal(lines.pop(), '');
    for (const line of lines) {
      const record = JSON.parse(line);
      assert.deepEqual(Object.keys(record), ['messages']);
      assert.deepEqual(record.messages.map((m: { role: string }) => m.role), ['system', 'user', 'assistant']);
    }
  });

  it('mixes roles and kinds in the declared shares', () => {
    const attacker = corpus.filter((d) => d.meta.role === 'attacker').length;
    assertNear({ n: corpus.length, rate: attacker / corpus.length }, CORPUS_MIX.attackerShare, 'attacker share');
    const defender = corpus.filter((d) => d.meta.role === 'defender');
    for (const [kind, share] of Object.entries(CORPUS_MIX.defender)) {
      const n = defender.filter((d) => d.meta.role === 'defender' && d.meta.kind === kind).length;
      assertNear({ n: defender.length, rate: n / defender.length }, share, `share of ${kind}`);
    }
  });

  it('realises the declared defender profile, as measured by the judge', () => {
    const stats = corpusStatistics(corpus, table);
    const t = DEFENDER_TARGETS;
    assertNear(stats.refusal['plain-harmful'], t.plainHarmfulRefusal, 'plain harmful refusal');
    assertNear(stats.refusal['attacked-harmful-vulnerable'], 1 - t.vulnerableCompliance, 'refusal under a weak spot');
    assertNear(stats.refusal['attacked-harmful-resisted'], 1 - t.resistedCompliance, 'refusal under other tactics');
    assertNear(stats.refusal['plain-benign'], 1 - t.benignCompliance, 'benign over-refusal');
    assertNear(stats.refusal['plain-looks-harmful'], t.looksHarmfulRefusal, 'harmful-looking over-refusal');
    assertNear(stats.refusal['adversarial-benign'], t.adversarialBenignRefusal, 'adversarial benign refusal');
    assertNear(stats.refusal['adversarial-looks-harmful'], t.adversarialLooksHarmfulRefusal, 'adversarial harmful-looking refusal');
    assertNear(stats.taskAccuracy, t.taskAccuracy, 'task accuracy');
    assert.equal(stats.refusal.task.rate, 0);
  });

  it('gives the attacker mostly weak, always faithful rewrites', () => {
    const stats = corpusStatistics(corpus, table);
    assert.equal(stats.faithfulRewrites.rate, 1);
    const breakable = HARMFUL_INTENTS.filter((i) => table.byIntent[i.id].length > 0).length / HARMFUL_INTENTS.length;
    assertNear(stats.strongRewrites, ATTACKER_TARGETS.harmful.strong * breakable, 'strong rewrites');
    const seeds = new Map(gameSeeds().map((s) => [s.id, s.prompt]));
    const paraphrases = corpus.filter((d) => d.meta.role === 'attacker' && d.meta.strength === 'paraphrase');
    assert.ok(paraphrases.length > 1000);
    for (const d of paraphrases) {
      const seedPrompt = d.meta.role === 'attacker' ? seeds.get(d.meta.seed) : undefined;
      assert.ok(seedPrompt && d.messages[1].content.endsWith(seedPrompt), 'the seed is not in the attacker instruction');
      assert.notEqual(d.messages[2].content, seedPrompt, 'a paraphrase repeated its seed');
    }
  });

  it('keeps every rendered dialogue under the token budget with no unknown tokens', () => {
    const tokenizer = sandboxTokenizer();
    const unk = tokenizer.token_to_id(SPECIAL_TOKENS.unknown);
    for (const text of renderCorpus(corpus)) {
      const ids = tokenizer.encode(text).ids;
      assert.ok(ids.length < MAX_SEQUENCE_TOKENS, `${ids.length} tokens: ${text}`);
      assert.ok(!ids.includes(unk!), text);
    }
  });

  it('cannot exceed the budget even in the worst case the grammar allows', () => {
    const tokenizer = sandboxTokenizer();
    const length = (s: string) => tokenizer.encode(s).ids.length;
    const longest = (texts: string[]) => texts.reduce((a, b) => (length(a) >= length(b) ? a : b));
    const prompt = longest(enumerateAllAttacks().map((a) => a.text));
    const response = longest(allResponses());
    const seedUser = longest(gameSeeds().map((s) => attackerMessages(s)[1].content));
    const defenderWorst = renderChat([...defenderMessages(prompt), { role: 'assistant', content: response }]);
    const attackerWorst = renderChat([{ role: 'system', content: attackerMessages(gameSeeds()[0])[0].content }, { role: 'user', content: seedUser }, { role: 'assistant', content: prompt }]);
    assert.ok(length(defenderWorst) < MAX_SEQUENCE_TOKENS, `defender worst case ${length(defenderWorst)}`);
    assert.ok(length(attackerWorst) < MAX_SEQUENCE_TOKENS, `attacker worst case ${length(attackerWorst)}`);
  });
});
