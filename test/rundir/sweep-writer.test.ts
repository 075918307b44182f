/** Who writes a sweep: its id, its writer's identity, and one writer at a time. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RunWriter } from '../../extension/rundir/writer';
import { SweepWriter, readSweepInfo } from '../../extension/rundir/sweep';
import { processStartToken } from '../../extension/rundir/liveness';
import { standInTrainer, started } from '../helpers/stand-in-trainer';
import { NEW_RUN, tempDir } from './helpers';

const NEW_SWEEP = { name: 'sandbox-absp', seeds: [1, 2], modes: ['bipolicy' as const], config: { rounds: 1 } };

describe('sweep and run writers', () => {
  it('two runs or sweeps with one name started in the same second get their own folders', () => {
    const folder = tempDir();
    const now = new Date('2026-12-02T05:00:00.250Z');
    const a = SweepWriter.create(folder, NEW_SWEEP, now);
    const b = SweepWriter.create(folder, NEW_SWEEP, now);
    assert.equal(path.basename(a.dir), '2026-12-02T05-00-00-sandbox-absp-sweep');
    assert.equal(path.basename(b.dir), '2026-12-02T05-00-00-sandbox-absp-sweep-2');
    assert.equal(readSweepInfo(b.dir).id, path.basename(b.dir));
    const clock = () => now;
    const r1 = RunWriter.create(folder, { ...NEW_RUN, id: undefined }, { now: clock });
    const r2 = RunWriter.create(folder, { ...NEW_RUN, id: undefined }, { now: clock });
    assert.deepEqual([path.basename(r1.dir), path.basename(r2.dir)], ['2026-12-02T05-00-00-test-run', '2026-12-02T05-00-00-test-run-2']);
    // A name the caller chose is never changed: creating it twice is refused.
    SweepWriter.create(folder, { ...NEW_SWEEP, id: 'chosen' });
    assert.throws(() => SweepWriter.create(folder, { ...NEW_SWEEP, id: 'chosen' }), /already holds a sweep/);
  });

  it('records when its writer started, so a reused pid is not taken for the sweep\'s process', function () {
    if (processStartToken(process.pid) === null) this.skip(); // only Linux exposes start times
    const w = SweepWriter.create(tempDir(), NEW_SWEEP);
    const info = readSweepInfo(w.dir);
    assert.equal(info.pid, process.pid);
    assert.equal(info.pid_start, processStartToken(process.pid));
  });

  it('refuses to resume a sweep another live trainer is running, and takes over one whose trainer is gone', async function () {
    if (processStartToken(process.pid) === null) this.skip();
    const folder = tempDir();
    const w = SweepWriter.create(folder, NEW_SWEEP);
    const child = standInTrainer(folder);
    await started(child);
    try {
      const file = path.join(w.dir, 'sweep.json');
      const info = JSON.parse(fs.readFileSync(file, 'utf8'));
      fs.writeFileSync(file, JSON.stringify({ ...info, pid: child.pid, host: os.hostname(), pid_start: processStartToken(child.pid!) }));
      assert.throws(() => SweepWriter.resume(w.dir), /still being run by process/);
      // The same pid with another start token is a different program: the sweep's trainer is gone.
      fs.writeFileSync(file, JSON.stringify({ ...info, pid: child.pid, host: os.hostname(), pid_start: 'linux:other:1' }));
      const resumed = SweepWriter.resume(w.dir);
      assert.equal(resumed.info.pid, process.pid);
      assert.equal(readSweepInfo(w.dir).pid_start, processStartToken(process.pid), 'the old token does not stay next to the new pid');
    } finally {
      child.kill();
    }
  });
});
