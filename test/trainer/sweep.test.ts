/**
 * Sweeps on a tiny sandbox-vocabulary model: `absp run --seeds` runs the method and its baseline once
 * per seed into one sweep folder, writes the comparison (medians, intervals, paired differences) that
 * the reader recomputes from the runs, resumes a stopped sweep without running a finished run again,
 * and refuses a damaged or foreign manifest with a message naming the file.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../extension/cli/main';
import { MAIN_JOB_SEEDS, mainJobNote } from '../../extension/cli/commands/run';
import { RunReader } from '../../extension/rundir/reader';
import { SweepError, SweepReader, readSweepInfo } from '../../extension/rundir/sweep';
import { SweepSummarySchema } from '../../extension/rundir/schema';
import { parseRunConfig, parseSeedList, ConfigError } from '../../extension/trainer/run-config';
import { runExperiment } from '../../extension/trainer/experiment';
import { buildDeps, openEngine } from '../../extension/trainer/setup';
import { runSweep } from '../../extension/trainer/sweep';
import { tempDir, writeTinySandboxModel } from '../helpers/random-checkpoint';

async function capture(argv: string[]): Promise<{ code: number; out: string }> {
  const write = process.stdout.write.bind(process.stdout);
  const out: string[] = [];
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  try {
    return { code: await main(argv), out: out.join('') };
  } finally {
    process.stdout.write = write;
  }
}

describe('sweeps over seeds', function () {
  this.timeout(600000);
  let dir: string;
  let model: string;
  let configFile: string;
  const base = () => ({
    name: 'tiny',
    model,
    runs_dir: path.join(dir, 'runs'),
    rounds: 1,
    steps_per_round: 1,
    game: { seeds_per_step: 4, max_new_tokens: { attacker: 5, defender: 5 } },
    evaluation: { nash_gap: true, crossplay: true, attacker_samples_per_seed: 1 },
    engine: { kind: 'ort' as const, threads: 1 },
    baselines: ['shared-lora' as const],
  });
  before(() => {
    dir = tempDir('absp-sweep-');
    model = writeTinySandboxModel(path.join(dir, 'model'));
    configFile = path.join(dir, 'tiny.json');
    fs.writeFileSync(configFile, JSON.stringify(base()));
  });

  it('the main job states how many seeds its result rests on', () => {
    assert.match(mainJobNote(MAIN_JOB_SEEDS), new RegExp(MAIN_JOB_SEEDS.length === 1 ? `one seed \\(seed ${MAIN_JOB_SEEDS[0]}\\)` : `${MAIN_JOB_SEEDS.length} seeds`));
    assert.match(mainJobNote([1, 2]), /2 seeds \(1, 2\).*--seeds 1-8/);
  });

  it('parses seed lists and refuses bad ones', () => {
    assert.deepEqual(parseSeedList('1-4'), [1, 2, 3, 4]);
    assert.deepEqual(parseSeedList('1,3, 7-8'), [1, 3, 7, 8]);
    for (const bad of ['', '3-1', 'a', '1,1', '1-2000', '-2']) assert.throws(() => parseSeedList(bad), ConfigError, bad);
    assert.throws(() => parseRunConfig({ seeds: [1, 1] }, 'x.json'), /x\.json: seeds/);
  });

  it('absp run --seeds runs each mode once per seed into one sweep and writes the comparison', async () => {
    const { code, out } = await capture(['run', configFile, '--seeds', '1-2', '--quiet', '--json']);
    assert.equal(code, 0);
    const printed = SweepSummarySchema.parse(JSON.parse(out));
    const sweeps = fs.readdirSync(path.join(dir, 'runs')).filter((n) => n.endsWith('-sweep'));
    assert.equal(sweeps.length, 1);
    const reader = SweepReader.open(path.join(dir, 'runs', sweeps[0]));
    assert.equal(reader.info.status, 'completed');
    assert.deepEqual(reader.info.runs.map((r) => r.id), ['seed-1-bipolicy', 'seed-1-shared-lora', 'seed-2-bipolicy', 'seed-2-shared-lora']);
    const runs = reader.runs();
    for (const r of runs) {
      assert.equal(r.status, 'completed', r.id);
      const info = RunReader.open(r.dir);
      const cfg = info.config() as { seed: number; mode: string; seeds?: unknown };
      assert.equal(cfg.seed, r.seed);
      assert.equal(cfg.mode, r.mode);
      assert.equal(cfg.seeds, undefined);
    }
    // The summary written is the one the reader computes from the runs (up to its time stamp).
    const written = reader.writtenSummary()!;
    assert.deepEqual({ ...written, created: '' }, { ...reader.summary(), created: '' });
    assert.deepEqual({ ...printed, created: '' }, { ...written, created: '' });
    // Per mode: the median of two seeds is their mean; the interval spans them.
    for (const mode of ['bipolicy', 'shared-lora'] as const) {
      const values = runs.filter((r) => r.mode === mode).map((r) => r.rounds[r.rounds.length - 1].metrics['asr/best_response'] as number);
      const m = written.modes.find((x) => x.mode === mode)!.after['asr/best_response'];
      assert.equal(m.n, 2);
      assert.ok(Math.abs(m.median! - (values[0] + values[1]) / 2) < 1e-12);
      assert.ok(m.low! <= Math.min(...values) + 1e-12 && m.high! >= Math.max(...values) - 1e-12);
    }
    // Paired: bipolicy − shared-lora seed by seed.
    const p = written.paired.find((x) => x.metric === 'nash_gap' && x.b === 'shared-lora')!;
    const diffs = [1, 2].map((seed) => {
      const at = (mode: string) => runs.find((r) => r.seed === seed && r.mode === mode)!.rounds.at(-1)!.metrics.nash_gap as number;
      return at('bipolicy') - at('shared-lora');
    });
    assert.ok(Math.abs(p.difference.median! - (diffs[0] + diffs[1]) / 2) < 1e-12);
    assert.equal(p.wins_a + p.wins_b + p.ties, 2);
    assert.equal(p.wins_a, diffs.filter((d) => d < 0).length);
    // Trainable parameters are measured per mode: two adapters against one.
    const params = (mode: string) => written.modes.find((x) => x.mode === mode)!.after['parameters/trainable'].median!;
    assert.equal(params('bipolicy'), 2 * params('shared-lora'));
    // Curves for the dashboard: one point per round, each over both seeds.
    const curves = reader.curves('nash_gap', runs);
    assert.deepEqual(curves.map((c) => c.points.map((x) => [x.round, x.n])), [[[0, 2], [1, 2]], [[0, 2], [1, 2]]]);
  });

  it('a stopped sweep resumes: finished runs are kept, the rest run once', async () => {
    // Measurement off: this checks which runs run, not what they measure.
    const c = parseRunConfig({ ...base(), runs_dir: path.join(dir, 'resume'), evaluation: { nash_gap: false, crossplay: false } }, 'resume');
    let started = 0;
    const runOne = (stopAfterFirst: boolean) => async (config: typeof c, target: { runId: string } | { resumeDir: string }) => {
      started++;
      const engine = openEngine(config);
      try {
        const result = await runExperiment({
          config,
          deps: buildDeps(config, dir, engine),
          ...('runId' in target ? { runId: target.runId } : { resumeDir: target.resumeDir }),
          shouldStop: () => stopAfterFirst && started > 1,
        });
        return { dir: result.dir, status: result.status };
      } finally {
        await engine.close();
      }
    };
    const first = await runSweep({ config: c, seeds: [3, 4], sweepId: 'resumable', runOne: runOne(true) });
    assert.equal(first.status, 'stopped');
    assert.equal(readSweepInfo(first.dir).status, 'stopped');
    assert.equal(fs.existsSync(path.join(first.dir, 'summary.json')), false);
    started = 0;
    const second = await runSweep({ config: c, seeds: [3, 4], resumeDir: first.dir, runOne: runOne(false) });
    assert.equal(second.status, 'completed');
    assert.equal(started, 3, 'the finished run is not run again');
    const runs = SweepReader.open(first.dir).runs();
    assert.deepEqual(runs.map((r) => r.status), ['completed', 'completed', 'completed', 'completed']);
    assert.equal(RunReader.open(runs[0].dir).info.attempt, 1);
    assert.equal(RunReader.open(runs[1].dir).info.attempt, 2, 'the stopped run resumed');
    assert.equal(second.summary.modes[0].seeds.length, 2);
  });

  it('refuses a damaged, foreign or newer sweep manifest, naming the file', () => {
    const bad = path.join(dir, 'bad-sweep');
    fs.mkdirSync(bad, { recursive: true });
    const file = path.join(bad, 'sweep.json');
    const valid = JSON.parse(fs.readFileSync(path.join(dir, 'resume', 'resumable', 'sweep.json'), 'utf8'));
    const cases: [unknown, RegExp][] = [
      ['{not json', /not valid JSON/],
      [{ ...valid, format: 'absp-run' }, /not an ABSP sweep manifest/],
      [{ ...valid, version: 99 }, /newer than the version 1/],
      [{ ...valid, runs: [{ seed: 1, mode: 'bipolicy', id: '../outside' }] }, /corrupt: runs\.0\.id/],
      [{ ...valid, runs: [valid.runs[0], valid.runs[0]] }, /listed twice/],
    ];
    for (const [content, why] of cases) {
      fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
      assert.throws(
        () => SweepReader.open(bad),
        (e: unknown) => e instanceof SweepError && e.message.includes(file) && why.test(e.message),
        String(why),
      );
    }
  });
});
