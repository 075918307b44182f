/**
 * Self-play runs on the PyTorch engine, end to end: a short sandbox ABSP run with
 * `"engine": {"kind": "torch", "device": "cpu", "dtype": "float32"}` completes with the engine and
 * device in run.json and fingerprints in its records; its round-0 exact metrics equal the built-in
 * engine's; it resumes after SIGKILL; a killed engine process pauses the run and keeps its last
 * complete round; bad checkpoints and a missing environment are clear errors through the protocol.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunReader } from '../../extension/rundir/reader';
import { RunConfigInput, parseRunConfig } from '../../extension/trainer/run-config';
import { runExperiment } from '../../extension/trainer/experiment';
import { buildDeps, openEngine } from '../../extension/trainer/setup';
import { TorchEngine } from '../../extension/engine/torch/torch-engine';
import { EngineProcess, TorchEngineError } from '../../extension/engine/torch/client';
import { engineCwd, engineEnv } from '../../extension/engine/torch/python-env';
import { tempDir } from '../helpers/random-checkpoint';
import { describeWithTorchEngine, makeHfCheckpoint, torchEnginePython } from '../helpers/torch-engine';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'absp.js');
const TORCH = { kind: 'torch', device: 'cpu', dtype: 'float32', threads: 1 } as const;

function config(dir: string, extra: RunConfigInput = {}): RunConfigInput {
  return {
    name: 'torch-run',
    model: 'builtin:sandbox',
    runs_dir: path.join(dir, 'runs'),
    rounds: 1,
    steps_per_round: 2,
    game: { seeds_per_step: 4, max_new_tokens: { attacker: 12, defender: 12 } },
    rl: { estimator: 'grpo', group_size: 2, helpful_sft: { coef: 0.5, batch_size: 4 } },
    evaluation: { nash_gap: true, crossplay: false, attacker_samples_per_seed: 2 },
    engine: TORCH,
    baselines: [],
    ...extra,
  };
}

describeWithTorchEngine('self-play on the PyTorch engine', () => {
  let dir: string;
  before(() => {
    dir = tempDir('absp-torch-runs-');
  });

  it('a short sandbox ABSP run completes, with engine, device and fingerprints recorded, and round 0 measures what the built-in engine measures', async function () {
    this.timeout(900_000);
    const results: Record<string, Record<string, number | null>> = {};
    const c = parseRunConfig(config(dir), 'test');
    const torch = openEngine(c);
    try {
      const run = await runExperiment({ config: c, deps: buildDeps(c, dir, torch), runId: 'round0-torch' });
      assert.equal(run.status, 'completed');
      results.torch = run.rounds[0].metrics;
    } finally {
      await torch.close();
    }
    // The built-in engine measures the same round 0: the policies the trainer creates, measured alone.
    const co = parseRunConfig(config(dir, { engine: { kind: 'ort', threads: 1 } }), 'test');
    const ort = openEngine(co);
    try {
      const deps = buildDeps(co, dir, ort);
      for (const [name, seed] of [['attacker', co.seed], ['defender', co.seed + 1]] as const) {
        await ort.createPolicy(name, { kind: 'lora', rank: co.lora.rank, alpha: co.lora.alpha, targets: co.lora.targets, seed });
      }
      results.ort = (await deps.evaluator!.measureRound({ attacker: 'attacker', defender: 'defender' })).metrics;
    } finally {
      await ort.close();
    }
    const keys = Object.keys(results.ort);
    assert.ok(keys.includes('nash_gap') && keys.includes('over_refusal') && keys.includes('asr/trained_attacker'));
    // A run's round also records its trainable parameters (main's f9a80bf), which measureRound does not measure.
    assert.ok((results.torch['parameters/trainable'] ?? 0) > 0);
    assert.deepEqual(Object.keys(results.torch).filter((k) => k !== 'parameters/trainable').sort(), keys.sort());
    for (const k of keys) {
      const a = results.ort[k];
      const b = results.torch[k];
      assert.ok(a === b || (a !== null && b !== null && Math.abs(a - b) < 1e-6), `${k}: ort ${a}, torch ${b}`);
    }
    const reader = RunReader.open(path.join(dir, 'runs', 'round0-torch'));
    assert.equal(reader.info.engine, 'torch');
    assert.equal(reader.info.device, 'cpu');
    assert.equal(reader.info.dtype, 'float32');
    const [r0, r1] = reader.rounds();
    assert.match(r0.fingerprints!.attacker, /^[0-9a-f]{16}$/);
    assert.notEqual(r1.fingerprints!.defender, r0.fingerprints!.defender, 'training changed the defender');
    // The first step's rollouts were sampled by the round-0 weights, and say so.
    const first = reader.transcript(1).filter((e) => e.step === 1);
    assert.ok(first.some((e) => e.attacked));
    for (const e of first) {
      assert.equal(e.fingerprints!.defender, r0.fingerprints!.defender);
      if (e.attacked) assert.equal(e.fingerprints!.attacker, r0.fingerprints!.attacker);
    }
  });

  it('Stop (SIGTERM) stops after the step and closes the engine; a SIGKILLed run resumes; every step runs once', async function () {
    this.timeout(1_200_000);
    const cfg = path.join(dir, 'kill.absp.json');
    // Two steps a round, so a Stop sent when round 2 is saved lands while round 3's first step runs.
    fs.writeFileSync(cfg, JSON.stringify(config(dir, { name: 'killed', rounds: 3, steps_per_round: 2, evaluation: { nash_gap: false, crossplay: false } })));
    const runs = path.join(dir, 'runs');
    const runDir = () => (fs.existsSync(runs) ? fs.readdirSync(runs).filter((n) => n.includes('killed')).map((n) => path.join(runs, n))[0] : undefined);
    const roundDone = (r: number) => !!runDir() && fs.existsSync(path.join(runDir()!, 'rounds', `round-${String(r).padStart(4, '0')}`, 'round.json'));
    const waitFor = async (ok: () => boolean) => {
      const deadline = Date.now() + 600_000;
      while (Date.now() < deadline && !ok()) await new Promise((r) => setTimeout(r, 100));
      assert.ok(ok(), 'timed out');
    };
    const engineOf = (pid: number) => spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
    const gone = async (pids: number[]) => {
      for (let i = 0; i < 100 && pids.some((p) => fs.existsSync(`/proc/${p}`)); i++) await new Promise((r) => setTimeout(r, 100));
      return pids.every((p) => !fs.existsSync(`/proc/${p}`));
    };
    const start = (args: string[]) => spawn(process.execPath, [CLI, 'run', ...args, '--quiet'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

    // SIGKILL after round 1: the engine sees its stdin close and exits with its trainer.
    let child = start([cfg]);
    await waitFor(() => roundDone(1));
    let engines = engineOf(child.pid!);
    assert.equal(engines.length, 1);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    assert.ok(await gone(engines), 'the engine process exited with its trainer');

    // Resume, then Stop (what the Runs view's Stop sends) after round 2: stopped, resumable, engine closed.
    child = start(['--resume', runDir()!]);
    await waitFor(() => roundDone(2));
    engines = engineOf(child.pid!);
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.on('exit', r));
    assert.equal(code, 0);
    assert.ok(await gone(engines), 'the engine process was closed');
    assert.equal(RunReader.open(runDir()!).info.status, 'stopped');

    const resumed = spawnSync(process.execPath, [CLI, 'run', '--resume', runDir()!, '--quiet', '--json'], { cwd: dir, encoding: 'utf8', timeout: 600_000 });
    assert.equal(resumed.status, 0, resumed.stderr);
    const reader = RunReader.open(runDir()!);
    assert.equal(reader.info.status, 'completed');
    assert.equal(reader.info.attempt, 3);
    assert.deepEqual(reader.rounds().map((r) => r.round), [0, 1, 2, 3]);
    const valid = reader.validity();
    assert.deepEqual(reader.events().filter((e) => e.type === 'step' && valid(e as never)).map((e) => (e as { step: number }).step), [1, 2, 3, 4, 5, 6]);
  });

  it('a killed engine process pauses the run with the reason and keeps the last complete round', async function () {
    this.timeout(900_000);
    const c = parseRunConfig(config(dir, { name: 'engine-killed', rounds: 3, steps_per_round: 1, evaluation: { nash_gap: false, crossplay: false } }), 'test');
    const engine = openEngine(c) as TorchEngine;
    await assert.rejects(
      runExperiment({
        config: c,
        deps: buildDeps(c, dir, engine),
        runId: 'engine-killed',
        onRound: ({ round }) => {
          if (round === 1) process.kill(engine.pid!, 'SIGKILL');
        },
      }),
      (e: Error) => e instanceof TorchEngineError && /torch engine process .* was killed by SIGKILL/.test(e.message),
    );
    await engine.close();
    const reader = RunReader.open(path.join(dir, 'runs', 'engine-killed'));
    assert.equal(reader.info.status, 'paused');
    assert.match(reader.info.reason ?? '', /killed by SIGKILL.*completed rounds are kept; resume with absp run --resume/s);
    assert.deepEqual(reader.rounds().map((r) => r.round), [0, 1]);
    assert.ok(fs.existsSync(path.join(reader.dir, 'rounds', 'round-0001', 'defender', 'adapter_model.safetensors')));
  });

  it('refused checkpoints and a missing environment are one clear error each', async function () {
    this.timeout(300_000);
    const python = torchEnginePython()!;
    const good = makeHfCheckpoint(python, path.join(dir, 'ckpt'), 'qwen2');
    const copy = (name: string, edit: (d: string) => void) => {
      const d = path.join(dir, name);
      fs.cpSync(good, d, { recursive: true });
      edit(d);
      return d;
    };
    const cases: [string, string, RegExp][] = [
      [copy('pickled', (d) => (fs.rmSync(path.join(d, 'model.safetensors')), fs.writeFileSync(path.join(d, 'pytorch_model.bin'), 'x'))), 'pytorch_model.bin', /holds the weights as a pickle/],
      [copy('custom', (d) => fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...JSON.parse(fs.readFileSync(path.join(good, 'config.json'), 'utf8')), auto_map: { AutoModelForCausalLM: 'x.Y' } }))), 'config.json', /needs custom code/],
      [copy('unknown', (d) => fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ ...JSON.parse(fs.readFileSync(path.join(good, 'config.json'), 'utf8')), model_type: 'mamba', architectures: ['MambaForCausalLM'] }))), 'config.json', /unsupported architecture MambaForCausalLM/],
    ];
    // One engine process answers each refused open with an error message and goes on serving.
    const proc = new EngineProcess({ command: python, args: ['-m', 'absp_torch', 'serve'], env: engineEnv(), cwd: engineCwd(), label: 'test' });
    try {
      for (const [model, file, problem] of cases) {
        await assert.rejects(proc.request('open', { model, device: 'cpu', dtype: 'float32' }), (e: Error) => e instanceof TorchEngineError && e.kind === 'checkpoint' && e.message.includes(path.join(model, file)) && problem.test(e.message));
      }
      assert.equal(((await proc.request('open', { model: good, device: 'cpu', dtype: 'float32' })).info as { architecture: string }).architecture, 'Qwen2ForCausalLM');
    } finally {
      await proc.close();
    }
    // Through TorchEngine, the error arrives with the first call that needs the model.
    const engine = TorchEngine.open(cases[0][0], TORCH);
    await assert.rejects(engine.createPolicy('p', { kind: 'lora' }), /holds the weights as a pickle/);
    await engine.close();
    assert.throws(() => TorchEngine.open('builtin:sandbox', { ...TORCH, python: path.join(dir, 'no-python') }), /absp torch setup/);
  });
});
