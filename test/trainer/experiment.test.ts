/**
 * The self-play run loop on a tiny random model that speaks the sandbox's vocabulary: a run completes
 * with its directory in order; killing it at random moments and resuming loses and duplicates
 * nothing; an engine crash or a dead judge endpoint pauses the run with the reason and keeps every
 * completed round; a stop request leaves a resumable run.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { RunReader } from '../../extension/rundir/reader';
import { RunConfigInput, parseRunConfig } from '../../extension/trainer/run-config';
import { PolicyEngine as Engine, EngineError, TrainSample, TrainSettings, TrainReport } from '../../extension/engine/policy-engine';
import { runExperiment } from '../../extension/trainer/experiment';
import { buildDeps, openEngine } from '../../extension/trainer/setup';
import { Rng } from '../../extension/util/rng';
import { tempDir, writeTinySandboxModel } from '../helpers/random-checkpoint';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'absp.js');

function config(dir: string, model: string, extra: RunConfigInput = {}): RunConfigInput {
  return {
    name: 'mech',
    model,
    runs_dir: path.join(dir, 'runs'),
    rounds: 3,
    steps_per_round: 2,
    game: { seeds_per_step: 6, max_new_tokens: { attacker: 6, defender: 6 } },
    evaluation: { nash_gap: false, crossplay: false, attacker_samples_per_seed: 1 },
    engine: { kind: 'ort', threads: 1 },
    // Self-RedTeam's estimator here (one sample per seed); the mode tests cover the GRPO default.
    rl: { estimator: 'reinforce++', kl: { coef: 0.01, estimator: 'k1', in_reward: true } },
    baselines: [],
    ...extra,
  };
}

/** Checks every invariant of a finished run directory. */
function checkCompleteRun(dir: string, rounds: number, stepsPerRound: number, seedsPerStep: number): void {
  const reader = RunReader.open(dir);
  assert.equal(reader.info.status, 'completed');
  assert.deepEqual(reader.rounds().map((r) => r.round), Array.from({ length: rounds + 1 }, (_, i) => i));
  const valid = reader.validity();
  const steps = reader.events().filter((e) => e.type === 'step' && valid(e as never));
  assert.deepEqual(steps.map((e) => (e as { step: number }).step), Array.from({ length: rounds * stepsPerRound }, (_, i) => i + 1), 'each step exactly once');
  for (let r = 1; r <= rounds; r++) {
    const ex = reader.transcript(r);
    assert.equal(ex.length, stepsPerRound * seedsPerStep, `round ${r} exchanges`);
    assert.equal(new Set(ex.map((e) => e.id)).size, ex.length, `round ${r} exchange ids are unique`);
    for (const role of ['attacker', 'defender']) {
      const adapter = path.join(dir, 'rounds', `round-${String(r).padStart(4, '0')}`, role);
      assert.ok(fs.existsSync(path.join(adapter, 'adapter_model.safetensors')), adapter);
    }
  }
  const corrupt = reader.issues().filter((i) => !/torn|incomplete|partial/i.test(i.problem));
  assert.deepEqual(corrupt, [], 'no corrupt files');
}

describe('self-play runs', function () {
  this.timeout(600000);
  let dir: string;
  let model: string;
  before(() => {
    dir = tempDir('absp-runs-');
    model = writeTinySandboxModel(path.join(dir, 'model'));
  });

  it('completes a bipolicy run with every round, step and exchange written once', async () => {
    const c = parseRunConfig(config(dir, model, { evaluation: { nash_gap: true, crossplay: true, attacker_samples_per_seed: 1 }, rounds: 2 }), 'test');
    const engine = openEngine(c);
    const deps = buildDeps(c, dir, engine);
    const result = await runExperiment({ config: c, deps, runId: 'complete' });
    await engine.close();
    checkCompleteRun(result.dir, 2, 2, 6);
    const reader = RunReader.open(result.dir);
    assert.equal(reader.nashGap().length, 3);
    assert.equal(reader.nashGap()[0].method, 'exact');
    const xp = reader.crossplay()!;
    assert.deepEqual(xp.attackers.map((a) => a.label), ['base', 'r1', 'r2']);
    assert.equal(xp.asr.length, 3);
    // Cross-play reuses what each round measured: a round's own pair scores what the round reported
    // (the base plays as round 0 did: round 0's adapters start at zero).
    for (const r of reader.rounds()) assert.equal(xp.asr[r.round][r.round], r.metrics['asr/trained_attacker'], `round ${r.round}`);
    // Exchanges name the adapters that played: those saved at the end of the previous round.
    const ex = reader.transcript(2)[0];
    assert.equal(ex.adapters.defender, 'rounds/round-0001/defender');
  });

  it('survives being killed at random moments: resume completes with nothing lost or duplicated', async function () {
    const cfgFile = path.join(dir, 'kill.json');
    fs.writeFileSync(cfgFile, JSON.stringify(config(dir, model, { name: 'killed', steps_per_round: 3 })));
    const rng = new Rng(2024);
    const start = (args: string[]) => spawn(process.execPath, [CLI, 'run', ...args, '--quiet'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    const runDir = () => {
      if (!fs.existsSync(path.join(dir, 'runs'))) return null;
      const runs = fs.readdirSync(path.join(dir, 'runs')).filter((n) => !n.startsWith('.') && n.includes('killed'));
      return runs.length ? path.join(dir, 'runs', runs[0]) : null;
    };
    // Kill at a random point of the run's progress: after a random number of new lines in its logs.
    const progress = () => {
      const d = runDir();
      if (!d) return 0;
      let lines = 0;
      const transcripts = path.join(d, 'transcripts');
      const files = fs.existsSync(transcripts) ? fs.readdirSync(transcripts).map((n) => path.join(transcripts, n)) : [];
      for (const f of [path.join(d, 'events.jsonl'), ...files]) {
        if (fs.existsSync(f)) lines += fs.readFileSync(f, 'utf8').split('\n').length - 1;
      }
      return lines;
    };
    let kills = 0;
    let finished = false;
    for (let attempt = 0; attempt < 15 && !finished; attempt++) {
      const existing = runDir();
      const child = start(existing ? ['--resume', existing] : [cfgFile]);
      let exitCode: number | null | undefined;
      const exited = new Promise<void>((r) => child.on('exit', (code) => ((exitCode = code), r())));
      if (kills < 5) {
        const from = progress();
        const target = from + 1 + rng.int(25);
        while (exitCode === undefined && progress() < target) await new Promise((r) => setTimeout(r, 5));
        if (exitCode === undefined) {
          child.kill('SIGKILL');
          kills++;
        }
      }
      await exited;
      finished = exitCode === 0;
    }
    assert.ok(finished, 'the run finished');
    assert.ok(kills >= 3, `killed ${kills} times`);
    checkCompleteRun(runDir()!, 3, 3, 6);
    assert.ok(RunReader.open(runDir()!).info.attempt > 1);
  });

  it('an engine crash mid-step pauses the run with the reason and keeps the completed rounds', async () => {
    const c = parseRunConfig(config(dir, model), 'test');
    const real = openEngine(c);
    let trainSteps = 0;
    const crashing: Engine = Object.create(real);
    crashing.trainStep = async (samples: readonly TrainSample[], settings: TrainSettings): Promise<TrainReport> => {
      if (++trainSteps === 4) throw new EngineError('engine process died (simulated)');
      return real.trainStep(samples, settings);
    };
    const deps = buildDeps(c, dir, crashing);
    await assert.rejects(runExperiment({ config: c, deps, runId: 'crash' }), /engine process died/);
    const crashedDir = path.join(dir, 'runs', 'crash');
    const reader = RunReader.open(crashedDir);
    assert.equal(reader.info.status, 'paused');
    assert.match(reader.info.reason ?? '', /engine process died \(simulated\) \(in round 2, step 4\); completed rounds are kept; resume with absp run --resume/);
    assert.deepEqual(reader.rounds().map((r) => r.round), [0, 1]);
    // A failure while resuming says so (not "before training").
    const failingLoad: Engine = Object.create(real);
    failingLoad.loadPolicy = async () => {
      throw new EngineError('adapter unreadable (simulated)');
    };
    await assert.rejects(runExperiment({ config: c, deps: buildDeps(c, dir, failingLoad), resumeDir: crashedDir }), /adapter unreadable/);
    assert.match(RunReader.open(crashedDir).info.reason ?? '', /adapter unreadable \(simulated\) \(while resuming from round 1\); completed rounds are kept/);
    // Resume with a healthy engine finishes the run.
    const deps2 = buildDeps(c, dir, real);
    await runExperiment({ config: c, deps: deps2, resumeDir: crashedDir });
    await real.close();
    checkCompleteRun(crashedDir, 3, 2, 6);
  });

  it('a judge endpoint that is down pauses the run before any round is lost', async () => {
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const c = parseRunConfig(config(dir, model, { judge: { kind: 'http', url: `http://127.0.0.1:${port}/v1`, model: 'wildguard', retries: 0, timeout_ms: 500 } }), 'test');
    const engine = openEngine(c);
    const deps = buildDeps(c, dir, engine);
    await assert.rejects(runExperiment({ config: c, deps, runId: 'judge-down' }), /judge endpoint .* failed: ECONNREFUSED/);
    await engine.close();
    const reader = RunReader.open(path.join(dir, 'runs', 'judge-down'));
    assert.equal(reader.info.status, 'paused');
    assert.match(reader.info.reason ?? '', /ECONNREFUSED/);
    assert.deepEqual(reader.rounds().map((r) => r.round), [0]);
  });

  it('a stop request leaves a stopped, resumable run', async () => {
    const c = parseRunConfig(config(dir, model), 'test');
    const engine = openEngine(c);
    let polls = 0;
    const result = await runExperiment({ config: c, deps: buildDeps(c, dir, engine), runId: 'stopped', shouldStop: () => ++polls > 3 });
    assert.equal(result.status, 'stopped');
    const reader = RunReader.open(result.dir);
    assert.equal(reader.info.status, 'stopped');
    assert.deepEqual(reader.rounds().map((r) => r.round), [0, 1]);
    await runExperiment({ config: c, deps: buildDeps(c, dir, engine), resumeDir: result.dir });
    await engine.close();
    checkCompleteRun(result.dir, 3, 2, 6);
  });

  it('a bad seeds file is named with its line before anything runs', () => {
    const seeds = path.join(dir, 'seeds.jsonl');
    fs.writeFileSync(seeds, '{"prompt": "bake bread", "harmful": false}\n{"prompt": 3}\n');
    const c = parseRunConfig(config(dir, model, { world: { kind: 'seeds', file: seeds } }), 'test');
    const engine = openEngine(c);
    assert.throws(() => buildDeps(c, dir, engine), /seeds\.jsonl:2: "prompt" must be a non-empty string/);
    return engine.close();
  });
});
