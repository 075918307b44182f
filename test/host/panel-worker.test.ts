/**
 * The panel worker (dist/panel-worker.js, a worker_threads thread) through the host's PanelWorkerClient:
 * adapter diffs stream progress and can be cancelled, a replay plays a recorded attack against another
 * round's defender with the real ONNX Runtime engine, and bad input — an adapter from another model,
 * a base model that is not installed, a missing worker script — becomes an error message.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createAdapter, saveAdapter } from '../../extension/engine/lora/adapter';
import { readConfig } from '../../extension/engine/model/model-config';
import { JobCancelled, PanelWorkerClient } from '../../extension/panel-worker/client';
import { JobManager, cliArgs } from '../../extension/host/job-manager';
import { resolveNodeCommand } from '../../extension/host/executables';
import { wilson } from '../../extension/util/stats';
import { RunReader } from '../../extension/rundir';
import { writeRandomCheckpoint } from '../helpers/random-checkpoint';
import { BIPOLICY, CLI_ENTRY, RECORDED, WORKER_SCRIPT, copyDir, ensureBuilt, fingerprint, tempDir, writeTinyConfig } from './helpers';

describe('host: panel worker (replay and adapter diff off the host thread)', function () {
  this.timeout(120000);
  let work: string;
  let tinyRun: string;
  let engine: PanelWorkerClient;

  before(async () => {
    ensureBuilt();
    work = tempDir();
    const manager = new JobManager(() => ({ node: resolveNodeCommand(''), cliEntry: CLI_ENTRY, logDir: path.join(work, 'logs'), pollMs: 100 }));
    const config = writeTinyConfig(work, { rounds: 2, steps_per_round: 2, game: { seeds_per_step: 4, max_new_tokens: { attacker: 6, defender: 6 } } });
    const outcome = await manager.start({ kind: 'run', title: 'tiny', args: cliArgs.run(config, path.join(work, 'runs')), cwd: work, runsFolder: path.join(work, 'runs') }).done;
    assert.equal(outcome.status, 'completed', outcome.message);
    tinyRun = outcome.runDir!;
  });
  beforeEach(() => (engine = new PanelWorkerClient({ workerScript: WORKER_SCRIPT })));
  afterEach(async () => engine.dispose());
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('computes an adapter diff in the worker with progress reports, without touching the run', async () => {
    const run = path.join(RECORDED, BIPOLICY);
    const before = fingerprint(run);
    const progress: [number, number][] = [];
    const job = engine.adapterDiff(path.join(run, 'rounds/round-0001/defender'), path.join(run, 'rounds/round-0003/defender'), null, (d, t) => progress.push([d, t]));
    const diff = await job.result;
    assert.ok(diff.modules.length > 0);
    assert.equal(progress.length, diff.modules.length);
    assert.deepEqual(progress[progress.length - 1], [diff.modules.length, diff.modules.length]);
    assert.ok(diff.modules.every((m) => m.normLeft > 0 && m.normRight > 0 && m.cosine !== null));
    assert.deepEqual(fingerprint(run), before);
  });

  it('cancels a queued request at once and the running one from inside its loop', async () => {
    const run = path.join(RECORDED, BIPOLICY);
    const a = engine.adapterDiff(path.join(run, 'rounds/round-0001/attacker'), path.join(run, 'rounds/round-0003/attacker'), null, () => engine.cancel(a.id));
    const b = engine.adapterDiff(path.join(run, 'rounds/round-0001/defender'), path.join(run, 'rounds/round-0002/defender'), null);
    const c = engine.adapterDiff(path.join(run, 'rounds/round-0002/defender'), path.join(run, 'rounds/round-0003/defender'), null);
    const aErr = a.result.catch((e: unknown) => e);
    const bErr = b.result.catch((e: unknown) => e);
    engine.cancel(b.id);
    assert.ok((await aErr) instanceof JobCancelled);
    assert.ok((await bErr) instanceof JobCancelled);
    assert.ok((await c.result).modules.length > 0, 'the worker carries on with the next request');
  });

  it('replays a recorded attack against the defender of another round with the ONNX Runtime engine', async () => {
    const reader = RunReader.open(tinyRun);
    const x = reader.transcript(1)[0];
    const before = fingerprint(tinyRun);
    const progress: number[] = [];
    const result = await engine.replay({ runDir: tinyRun, round: 1, exchange: x.id, adapterRound: 2 }, (d) => progress.push(d)).result;
    assert.equal(result.exchange, x.id);
    assert.equal(result.adapterRound, 2);
    assert.equal(result.adapters.defender, 'rounds/round-0002/defender');
    assert.equal(typeof result.defender.raw, 'string');
    assert.ok(result.judge, `the sandbox judge labelled the reply (${result.judgeError})`);
    assert.equal(typeof result.judge!.refusal, 'boolean');
    assert.ok(progress.length >= 2);
    // Replays are reproducible: same exchange, same adapters, same answer.
    const again = await engine.replay({ runDir: tinyRun, round: 1, exchange: x.id, adapterRound: 2 }).result;
    assert.equal(again.defender.raw, result.defender.raw);
    assert.deepEqual(fingerprint(tinyRun), before, 'a replay writes nothing into the run');
  });

  it('replays N samples: every answer with its labels, and the compliance and harm rates with 95% Wilson intervals', async () => {
    const x = RunReader.open(tinyRun).transcript(2)[1];
    const job = { runDir: tinyRun, round: 2, exchange: x.id, adapterRound: 2 };
    const result = await engine.replay({ ...job, samples: 8 }).result;
    const sampled = result.sampled!;
    assert.equal(sampled.answers.length, 8);
    assert.equal(sampled.answers[0].text, result.defender.text, 'the first sample is the answer shown beside the recorded one');
    const labelled = sampled.answers.filter((a) => a.judge && !a.judge.unparsable && a.judge.refusal !== null && a.judge.response_harmful !== null);
    assert.equal(sampled.unlabelled, 8 - labelled.length);
    const complied = labelled.filter((a) => a.judge!.refusal === false).length;
    const harmful = labelled.filter((a) => a.judge!.response_harmful === true).length;
    assert.equal(sampled.compliance.n, labelled.length);
    assert.equal(sampled.compliance.value, labelled.length ? complied / labelled.length : null);
    assert.equal(sampled.harm.value, labelled.length ? harmful / labelled.length : null);
    const ci = wilson(complied, labelled.length);
    assert.deepEqual(sampled.compliance.ci95, labelled.length ? [ci.low, ci.high] : null);
    const again = await engine.replay({ ...job, samples: 8 }).result;
    assert.deepEqual(again.sampled!.answers.map((a) => a.text), sampled.answers.map((a) => a.text), 'reproducible, sample by sample');
    const single = await engine.replay(job).result;
    assert.equal(single.sampled, undefined, 'one sample: no rates');
    assert.equal(single.defender.text, result.defender.text, 'the single replay is the first sample');
  });

  it('says which adapter does not fit the base model, for a diff and for a replay', async () => {
    const run = copyDir(tinyRun, path.join(work, 'mismatch'));
    const otherModel = writeRandomCheckpoint(path.join(work, 'other-model'), { hiddenSize: 48, intermediateSize: 64, numLayers: 1, numHeads: 4, numKvHeads: 2 });
    const otherConfig = readConfig(otherModel);
    const foreign = path.join(run, 'rounds/round-0002/defender');
    fs.rmSync(foreign, { recursive: true });
    saveAdapter(foreign, createAdapter(otherConfig, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj'], seed: 1 }), otherModel, otherConfig);
    const model = RunReader.open(run).config()!.model as string;

    // Two adapters of different models cannot be compared at all…
    await assert.rejects(engine.adapterDiff(path.join(run, 'rounds/round-0001/defender'), foreign, null).result, /do not belong to the same base model/);
    // …one that does not fit the run's base model is compared, with a warning that says so.
    const attacker = path.join(run, 'rounds/round-0002/attacker');
    fs.rmSync(attacker, { recursive: true });
    saveAdapter(attacker, createAdapter(otherConfig, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj'], seed: 2 }), otherModel, otherConfig);
    const diff = await engine.adapterDiff(attacker, foreign, model).result;
    assert.ok(diff.modules.length > 0);
    assert.match(diff.warnings.join('\n'), /round-0002\/attacker does not fit the run's base model .*: .*shape/);
    const x = RunReader.open(run).transcript(1)[0];
    await assert.rejects(engine.replay({ runDir: run, round: 1, exchange: x.id, adapterRound: 2 }).result, /rounds\/round-0002\/defender does not fit the run's base model/);
  });

  it('explains a replay that cannot run: base model not installed, unknown exchange, incomplete round', async () => {
    const moved = copyDir(tinyRun, path.join(work, 'moved-model'));
    const configFile = path.join(moved, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), model: path.join(work, 'gone') }));
    const x = RunReader.open(moved).transcript(1)[0];
    await assert.rejects(engine.replay({ runDir: moved, round: 1, exchange: x.id, adapterRound: 1 }).result, /the run's base model .*gone is not on this machine/);
    await assert.rejects(engine.replay({ runDir: tinyRun, round: 1, exchange: 'no-such-exchange', adapterRound: 1 }).result, /exchange no-such-exchange is not among the valid exchanges of round 1/);
    const stale = copyDir(tinyRun, path.join(work, 'stale-config'));
    const staleConfig = path.join(stale, 'config.json');
    fs.writeFileSync(staleConfig, JSON.stringify({ ...JSON.parse(fs.readFileSync(staleConfig, 'utf8')), kl_coef: 0.01 }));
    await assert.rejects(engine.replay({ runDir: stale, round: 1, exchange: x.id, adapterRound: 1 }).result, /the run's config cannot be replayed by this version of ABSP Lab: .*invalid run config.*unknown key "kl_coef"/);
    // The recorded fixture's adapters are synthetic (hidden size 16): they do not fit the sandbox model.
    const recorded = path.join(RECORDED, BIPOLICY);
    const r = RunReader.open(recorded).transcript(1)[0];
    await assert.rejects(engine.replay({ runDir: recorded, round: 1, exchange: r.id, adapterRound: 2 }).result, /rounds\/round-0002\/defender does not fit the run's base model builtin:sandbox: .*has shape \[4, 16\], but rank 4 on this model needs \[4, 128\]/);
    const y = RunReader.open(tinyRun).transcript(1)[0];
    await assert.rejects(engine.replay({ runDir: tinyRun, round: 1, exchange: y.id, adapterRound: 7 }).result, /round 7 of this run is not complete/);
  });

  it('fails requests with a clear message when the worker script is missing', async () => {
    const broken = new PanelWorkerClient({ workerScript: path.join(work, 'nope', 'panel-worker.js') });
    await assert.rejects(broken.adapterDiff('a', 'b', null).result, /panel worker .*nope\/panel-worker\.js is missing; the extension was not built completely/);
    await broken.dispose();
  });
});
