/**
 * What a crash may leave, beyond the kill tests of test/trainer/experiment.test.ts: the records a
 * round's marker vouches for are on disk (fsynced) before the marker is written.
 */
import { strict as assert } from 'node:assert';
import type { PathLike } from 'node:fs';
import * as path from 'node:path';
import { RunWriter, runLayout } from '../../extension/rundir';
import { NEW_RUN, exchange, tempDir } from './helpers';

// The module object itself (an `import * as` namespace is a copy whose properties cannot be replaced).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fs = require('node:fs') as typeof import('node:fs');

describe('run directory: crash safety', () => {
  it("flushes events, Nash-gap records and the round's transcript to disk before writing round.json", () => {
    const w = RunWriter.create(tempDir(), NEW_RUN);
    w.exchange(exchange(1, 1, 0));
    const layout = runLayout(w.dir);
    const order: string[] = [];
    const fdPath = new Map<number, string>();
    const realOpen = fs.openSync;
    const realFsync = fs.fsyncSync;
    const realRename = fs.renameSync;
    // Spies on the real calls (they still happen): which file each fsync and rename is about.
    (fs as { openSync: typeof fs.openSync }).openSync = ((p: PathLike, ...rest: unknown[]) => {
      const fd = (realOpen as (...a: unknown[]) => number)(p, ...rest);
      fdPath.set(fd, String(p));
      return fd;
    }) as typeof fs.openSync;
    (fs as { fsyncSync: typeof fs.fsyncSync }).fsyncSync = (fd: number) => {
      order.push(`fsync ${path.relative(w.dir, fdPath.get(fd) ?? '?')}`);
      realFsync(fd);
    };
    (fs as { renameSync: typeof fs.renameSync }).renameSync = (a: PathLike, b: PathLike) => {
      order.push(`rename ${path.relative(w.dir, String(b))}`);
      realRename(a, b);
    };
    try {
      w.completeRound(1, { steps: [1, 1], roles: ['attacker', 'defender'], metrics: {}, exchanges: 1, nashgap: { method: 'exact', nash_gap: 0.5, defender_exploitability: 0.4, attacker_gap: 0.1, best_response_asr: 0.4, budget: null } });
    } finally {
      (fs as { openSync: typeof fs.openSync }).openSync = realOpen;
      (fs as { fsyncSync: typeof fs.fsyncSync }).fsyncSync = realFsync;
      (fs as { renameSync: typeof fs.renameSync }).renameSync = realRename;
    }
    const marker = order.indexOf(`rename ${path.relative(w.dir, layout.roundJson(1))}`);
    assert.ok(marker > 0, `round.json was written (${order.join(', ')})`);
    for (const f of [layout.events, layout.nashgap, layout.transcript(1)]) {
      const at = order.indexOf(`fsync ${path.relative(w.dir, f)}`);
      assert.ok(at >= 0 && at < marker, `${path.basename(f)} is fsynced before round.json (${order.join(', ')})`);
    }
  });
});
