/**
 * Fingerprints end to end on the built-in engine (the trainer's checks are the same for both engines):
 * round.json records the fingerprint of each saved adapter, computable from its file; a rollout that
 * reports weights other than the policy the trainer last updated stops the run; a resumed run whose
 * saved adapter changed on disk stops with an error naming the folder.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { weightsFingerprint } from '../../extension/engine/fingerprint';
import { SafetensorsFile } from '../../extension/engine/model/safetensors';
import { RunReader } from '../../extension/rundir/reader';
import { RunConfigInput, parseRunConfig } from '../../extension/trainer/run-config';
import { PolicyEngine as Engine, GeneratedText, GenerationRequest, GenerationSettings } from '../../extension/engine/policy-engine';
import { runExperiment } from '../../extension/trainer/experiment';
import { FingerprintMismatchError } from '../../extension/trainer/fingerprints';
import { buildDeps, openEngine } from '../../extension/trainer/setup';
import { tempDir, writeTinySandboxModel } from '../helpers/random-checkpoint';

function config(dir: string, model: string, extra: RunConfigInput = {}): RunConfigInput {
  return {
    name: 'fp',
    model,
    runs_dir: path.join(dir, 'runs'),
    rounds: 2,
    steps_per_round: 1,
    game: { seeds_per_step: 4, max_new_tokens: { attacker: 6, defender: 6 } },
    evaluation: { nash_gap: false, crossplay: false, attacker_samples_per_seed: 1 },
    engine: { kind: 'ort', threads: 1 },
    rl: { estimator: 'reinforce++' },
    baselines: [],
    ...extra,
  };
}

function fileFingerprint(adapterDir: string): string {
  const st = SafetensorsFile.open(path.join(adapterDir, 'adapter_model.safetensors'));
  try {
    return weightsFingerprint([...st.entries.keys()].map((key) => ({ key, shape: st.entry(key).shape, data: st.readFloat32(key) })));
  } finally {
    st.close();
  }
}

describe('fingerprints of policy weights', function () {
  this.timeout(600_000);
  let dir: string;
  let model: string;
  before(() => {
    dir = tempDir('absp-fp-');
    model = writeTinySandboxModel(path.join(dir, 'model'));
  });

  it('round.json records each saved adapter\'s fingerprint, the hash of its file; transcripts the sampling weights\'', async () => {
    const c = parseRunConfig(config(dir, model), 'test');
    const engine = openEngine(c);
    const run = await runExperiment({ config: c, deps: buildDeps(c, dir, engine), runId: 'recorded' });
    await engine.close();
    const reader = RunReader.open(run.dir);
    const rounds = reader.rounds();
    for (const r of rounds) {
      for (const slot of ['attacker', 'defender']) {
        assert.equal(r.fingerprints![slot], fileFingerprint(path.join(run.dir, 'rounds', `round-${String(r.round).padStart(4, '0')}`, slot)));
      }
    }
    assert.notEqual(rounds[1].fingerprints!.attacker, rounds[0].fingerprints!.attacker);
    for (const e of reader.transcript(2)) assert.equal(e.fingerprints!.defender, rounds[1].fingerprints!.defender);
  });

  it('a rollout sampled with stale weights stops the run before it trains on it', async () => {
    const c = parseRunConfig(config(dir, model), 'test');
    const real = openEngine(c);
    let calls = 0;
    const stale: Engine = Object.create(real);
    let first: GeneratedText[] | null = null;
    stale.generate = async (requests: readonly GenerationRequest[], settings: GenerationSettings) => {
      const out = await real.generate(requests, settings);
      calls++;
      // After the first step's update, report the weights of the first step (a failed weight sync).
      if (calls === 1) first = out;
      return calls <= 2 ? out : out.map((g, i) => (requests[i].policy === 'attacker' ? { ...g, fingerprint: first!.find((f) => f.fingerprint && f.fingerprint !== null)?.fingerprint ?? 'x' } : g));
    };
    await assert.rejects(runExperiment({ config: c, deps: buildDeps(c, dir, stale), runId: 'stale' }), (e: Error) => e instanceof FingerprintMismatchError && /sampled by policy attacker with weights [0-9a-f]{16}, but the trainer's current attacker is [0-9a-f]{16}/.test(e.message));
    await real.close();
    const reader = RunReader.open(path.join(dir, 'runs', 'stale'));
    assert.equal(reader.info.status, 'paused');
    assert.deepEqual(reader.rounds().map((r) => r.round), [0, 1]);
  });

  it('a resumed run refuses an adapter that changed on disk after its round was recorded', async () => {
    const c = parseRunConfig(config(dir, model), 'test');
    const engine = openEngine(c);
    let polls = 0;
    const run = await runExperiment({ config: c, deps: buildDeps(c, dir, engine), runId: 'tampered', shouldStop: () => ++polls > 1 });
    assert.equal(run.status, 'stopped');
    const adapter = path.join(run.dir, 'rounds', 'round-0001', 'defender', 'adapter_model.safetensors');
    const bytes = fs.readFileSync(adapter);
    bytes[bytes.length - 2] ^= 0x40; // one float of the last tensor changes
    fs.writeFileSync(adapter, bytes);
    await assert.rejects(runExperiment({ config: c, deps: buildDeps(c, dir, engine), resumeDir: run.dir }), (e: Error) => e instanceof FingerprintMismatchError && e.message.includes(path.join(run.dir, 'rounds', 'round-0001', 'defender')) && /not those round 1 recorded/.test(e.message));
    await engine.close();
  });
});
