import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunReader, listRuns, outcomeOf } from '../../extension/rundir';
import { BIPOLICY_ID, FIXTURE_DIR, SHARED_ID, makeRecordedRuns } from '../fixtures/make-recorded-run';
import { tempDir } from './helpers';

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else out.push(path.relative(dir, path.join(d, e.name)));
    }
  };
  walk(dir);
  return out.sort();
}

describe('recorded run fixture', () => {
  it('is what make-recorded-run.ts generates, byte for byte (regenerate it after changing the script)', () => {
    const tmp = tempDir('absp-fixture-');
    try {
      makeRecordedRuns(tmp);
      assert.deepEqual(files(tmp), files(FIXTURE_DIR));
      for (const f of files(tmp)) {
        assert.ok(fs.readFileSync(path.join(tmp, f)).equals(fs.readFileSync(path.join(FIXTURE_DIR, f))), `${f} differs: run npx tsx test/fixtures/make-recorded-run.ts`);
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('reads as two completed three-round runs, the resumed one with its void attempt left out', () => {
    const list = listRuns(FIXTURE_DIR);
    assert.deepEqual(list.map((l) => path.basename(l.dir)).sort(), [BIPOLICY_ID, SHARED_ID].sort());
    assert.ok(list.every((l) => l.status === 'completed'));

    const bip = RunReader.open(path.join(FIXTURE_DIR, BIPOLICY_ID));
    const snap = bip.load();
    assert.equal(snap.info.attempt, 2);
    assert.deepEqual(snap.rounds.map((r) => [r.round, r.attempt]), [[0, 1], [1, 1], [2, 2], [3, 2]]);
    const steps = snap.events.flatMap((e) => (e.type === 'step' ? [e.step] : []));
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 'attempt 1’s steps 5 and 6 of round 2 are void');
    assert.equal(snap.issues.length, 1, 'the line torn by the kill is skipped and counted');
    assert.match(snap.issues[0].problem, /incomplete line/);
    for (const r of [1, 2, 3]) {
      const xs = bip.transcript(r);
      assert.equal(xs.length, 12);
      assert.equal(new Set(xs.map((x) => x.id)).size, 12);
    }
    const all = [1, 2, 3].flatMap((r) => bip.transcript(r));
    const outcomes = new Set(all.map(outcomeOf));
    for (const o of ['jailbreak', 'off-topic', 'refused', 'over-refusal', 'answered', 'unparsable'] as const) assert.ok(outcomes.has(o), `has an exchange with outcome ${o}`);
    assert.equal(snap.annotations.length, 3);
    assert.equal(snap.crossplay?.defenders.length, 6);
    assert.deepEqual(snap.nashgap.map((g) => g.nash_gap), [0.78, 0.55, 0.36, 0.21]);
  });
});
