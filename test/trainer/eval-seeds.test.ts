/**
 * `absp eval` on seeds files with sources and categories (what `absp data import` writes), on the
 * real engine with the shipped sandbox model: the refusal detector as judge gives the sandbox's exact
 * judge's rates, rates come per source and category with Wilson intervals, and a model is evaluated
 * on its own with --model.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../extension/cli/main';
import { EvalResultSchema } from '../../extension/rundir/schema';
import { gameSeeds } from '../../extension/sandbox/seeds';
import { evaluateDefender, loadEvalData, EvalDataError } from '../../extension/trainer/dataset-eval';
import { RefusalJudge } from '../../extension/trainer/judges/refusal-judge';
import { SandboxJudge } from '../../extension/trainer/judges/sandbox-judge';
import { OrtEngine } from '../../extension/engine/ort-engine';
import { rolePrompts } from '../../extension/trainer/role-prompts';
import { wilson } from '../../extension/util/stats';
import { tempDir } from '../helpers/random-checkpoint';

describe('eval on seeds with sources and categories', function () {
  this.timeout(600_000);
  let file: string;
  let engine: OrtEngine;

  before(() => {
    file = path.join(tempDir('absp-eval-seeds-'), 'sandbox-seeds.jsonl');
    // The sandbox's seeds, labelled as an imported file would be: a source per class and the intent class as category.
    const lines = gameSeeds().map((s) => JSON.stringify({ prompt: s.prompt, harmful: s.harmful, source: s.harmful ? 'sandbox-harmful' : 'sandbox-benign', category: s.class }));
    fs.writeFileSync(file, lines.join('\n') + '\n');
    engine = OrtEngine.open('builtin:sandbox', { threads: 1 });
  });
  after(async () => engine?.close());

  it('the refusal detector judges the sandbox model as the exact judge does, with rates by source and category', async () => {
    const items = loadEvalData(file);
    const common = { engine, prompts: rolePrompts('sandbox', { attacker: false, defender: false }), defender: null, items, maxNewTokens: 24, thinking: false, batchSize: 40 };
    const exact = await evaluateDefender({ ...common, judge: new SandboxJudge() });
    const detector = await evaluateDefender({ ...common, judge: new RefusalJudge() });
    for (const key of ['refusal_harmful', 'over_refusal', 'over_refusal/sandbox-benign/looks-harmful', 'refusal_harmful/sandbox-harmful']) {
      assert.deepEqual(detector[key], exact[key], key);
    }
    const harmful = items.filter((i) => i.harmful).length;
    assert.equal(detector.refusal_harmful.n, harmful);
    assert.equal(detector['refusal_harmful/sandbox-harmful'].n, harmful);
    assert.equal(detector['over_refusal/sandbox-benign'].n, items.length - harmful);
    assert.equal(detector['over_refusal/sandbox-benign/benign'].n! + detector['over_refusal/sandbox-benign/looks-harmful'].n!, items.length - harmful);
    assert.equal(detector['over_refusal/sandbox-harmful'], undefined, 'no rate where a source has no items of the class');
    const m = detector['over_refusal/sandbox-benign/looks-harmful'];
    const ci = wilson(Math.round(m.value! * m.n!), m.n!);
    assert.deepEqual(m.ci95, [ci.low, ci.high]);
    // The shipped sandbox model refuses most harmful and a fair share of harmful-looking requests, and few plain benign ones.
    assert.ok(detector.refusal_harmful.value! > 0.5, JSON.stringify(detector.refusal_harmful));
    assert.ok(detector['over_refusal/sandbox-benign/benign'].value! < detector['over_refusal/sandbox-benign/looks-harmful'].value!);
  });

  it('batching does not change the answers', async () => {
    const items = loadEvalData(file).slice(0, 30);
    const common = { engine, judge: new RefusalJudge(), prompts: rolePrompts('sandbox', { attacker: false, defender: false }), defender: null, items, maxNewTokens: 16, thinking: false };
    assert.deepEqual(await evaluateDefender({ ...common, batchSize: 7 }), await evaluateDefender({ ...common, batchSize: 30 }));
  });

  it('absp eval --model evaluates a model on its own with the refusal detector and writes the result', async () => {
    const out = path.join(path.dirname(file), 'result.json');
    assert.equal(await main(['eval', '--model', 'builtin:sandbox', '--data', file, '--out', out, '--threads', '1', '--max-new-tokens', '24']), 0);
    const result = EvalResultSchema.parse(JSON.parse(fs.readFileSync(out, 'utf8')));
    assert.equal(result.judge, 'refusal-detector');
    assert.equal(result.model, 'builtin:sandbox');
    assert.deepEqual(result.adapters, { defender: 'base' });
    assert.ok(result.metrics['refusal_harmful/sandbox-harmful'].n! > 0);
  });

  it('names the problem with bad arguments and bad lines', async () => {
    assert.equal(await main(['eval', '--model', 'builtin:sandbox', '--run', '/tmp', '--data', file]), 1);
    assert.equal(await main(['eval', '--model', '/nonexistent/model', '--data', file]), 1);
    assert.equal(await main(['eval', '--model', 'builtin:sandbox', '--data', file, '--judge', 'wildguard']), 2);
    const bad = path.join(path.dirname(file), 'bad.jsonl');
    fs.writeFileSync(bad, '{"prompt":"hi","harmful":false,"source":"a b"}\n');
    assert.throws(() => loadEvalData(bad), (e: Error) => e instanceof EvalDataError && e.message === `${bad}:1: "source" must be a name of letters, digits, ".", "_" and "-"`);
  });
});
