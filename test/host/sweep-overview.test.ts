/** Sweeps of seeds as the host lists them for the dashboard: summaries, curves, damage, live changes. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunCatalog } from '../../extension/host/run-catalog';
import { listSweepDirs, summariseSweep } from '../../extension/host/sweep-overview';
import { RunReader } from '../../extension/rundir';
import { SweepOverviewSchema } from '../../webview/protocol';
import { makeRecordedSweep, shiftOf } from '../helpers/recorded-sweep';
import { BIPOLICY, RECORDED, SHARED, copyDir, fingerprint, tempDir } from './helpers';

describe('host: sweeps of seeds for the dashboard', () => {
  let work: string;
  let runs: string;
  beforeEach(() => {
    work = tempDir();
    runs = path.join(work, 'runs');
    fs.mkdirSync(runs);
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it('summarises each method over its seeds: medians and intervals of the headline metrics, and per-round curves', () => {
    const { dir } = makeRecordedSweep(runs);
    const before = fingerprint(work);
    const o = summariseSweep(dir);
    assert.ok(SweepOverviewSchema.safeParse(o).success, 'it is what the protocol carries');
    assert.equal(o.error, null);
    assert.equal(o.status, 'completed');
    assert.deepEqual(o.seeds, [1, 2, 3]);
    assert.deepEqual(o.modes.map((m) => [m.mode, m.seeds, m.planned, m.started]), [
      ['bipolicy', [1, 2, 3], 3, 3],
      ['shared-lora', [1, 2, 3], 3, 3],
    ]);
    const bip = o.modes[0];
    assert.deepEqual(Object.keys(bip.after).sort(), ['asr/best_response', 'capability', 'exploitability/defender', 'nash_gap', 'over_refusal']);
    assert.equal(bip.before.nash_gap.median, 0.78);
    assert.equal(bip.after.nash_gap.median, 0.21);
    assert.equal(bip.after.nash_gap.n, 3);
    // The curve: per round, the median of the three seeds is the recorded run's value.
    const recorded = RunReader.open(path.join(RECORDED, BIPOLICY)).rounds();
    assert.deepEqual(bip.curves.nash_gap.map((p) => p.round), recorded.map((r) => r.round));
    for (const [i, p] of bip.curves.nash_gap.entries()) {
      const v = recorded[i].metrics.nash_gap as number;
      assert.ok(Math.abs(p.median! - v) < 1e-9, `round ${p.round}: ${p.median} vs ${v}`);
      assert.ok(p.low! >= v + shiftOf(1) - 1e-9 && p.high! <= v + shiftOf(3) + 1e-9, JSON.stringify(p));
      assert.equal(p.n, 3);
    }
    assert.deepEqual(fingerprint(work), before, 'reading a sweep writes nothing');
  });

  it('counts a sweep still going: seeds started, seeds completed, curves over the seeds that reached each round', () => {
    const { dir } = makeRecordedSweep(runs, { started: [1, 2] });
    const o = summariseSweep(dir);
    assert.equal(o.status, 'running');
    assert.deepEqual(o.modes.map((m) => [m.seeds, m.planned, m.started]), [
      [[1, 2], 3, 2],
      [[1, 2], 3, 2],
    ]);
    assert.ok(o.modes[0].curves.nash_gap.every((p) => p.n === 2));
  });

  it('says why a sweep cannot be read, naming its manifest, instead of failing', () => {
    const { dir } = makeRecordedSweep(runs);
    const manifest = path.join(dir, 'sweep.json');
    const good = fs.readFileSync(manifest, 'utf8');
    fs.writeFileSync(manifest, '{"format": "absp-sweep", "version": 1, ');
    let o = summariseSweep(dir);
    assert.equal(o.error?.kind, 'corrupt');
    assert.match(o.error!.message, /sweep\.json/);
    assert.deepEqual(o.modes, []);
    fs.writeFileSync(manifest, JSON.stringify({ ...JSON.parse(good), version: 99 }));
    o = summariseSweep(dir);
    assert.equal(o.error?.kind, 'newer-format');
  });

  it('lists sweeps beside the runs, and summarises one again only when a round or a run of it ends', () => {
    copyDir(path.join(RECORDED, SHARED), path.join(runs, SHARED));
    const { dir } = makeRecordedSweep(runs, { started: [1] });
    assert.deepEqual(listSweepDirs(runs), [dir]);
    const catalog = new RunCatalog(() => ({ runsFolder: runs, extraRuns: [] }));
    assert.ok(catalog.refresh());
    // The sweep's runs are listed after the folder's own runs, named with their seed and mode.
    const listedRuns = catalog.summaries().map((s) => path.basename(s.run));
    assert.equal(listedRuns[0], SHARED);
    assert.deepEqual(listedRuns.slice(1).sort(), ['seed-1-bipolicy', 'seed-1-shared-lora']);
    assert.match(catalog.summaries().find((s) => s.run.endsWith('seed-1-bipolicy'))!.label, /^\S+ · seed-1-bipolicy · \d+ \w+ \d\d:\d\d$/);
    assert.equal(catalog.get(path.join(dir, 'seed-1-bipolicy'))?.status, 'completed');
    const [first] = catalog.sweeps();
    assert.match(first.label, /^sandbox-sweep · 25 Nov \d\d:\d\d$/);
    assert.equal(first.modes[0].seeds.length, 1);
    assert.equal(catalog.refresh(), null, 'nothing changed');
    assert.equal(catalog.sweeps()[0], first, 'not summarised again');
    // Appending step records does not change the overview; a finished run does.
    fs.appendFileSync(path.join(dir, 'seed-1-bipolicy', 'events.jsonl'), '');
    assert.equal(catalog.refresh(), null);
    fs.rmSync(dir, { recursive: true });
    makeRecordedSweep(runs);
    const change = catalog.refresh();
    assert.ok(change, 'the sweep changed');
    assert.equal(catalog.sweeps()[0].modes[0].seeds.length, 3);
  });
});
