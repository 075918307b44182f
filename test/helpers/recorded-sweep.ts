/**
 * A sweep of seeds built from the two recorded sandbox runs (test/fixtures/recorded/): for each seed,
 * a copy of the bipolicy run and of the shared-lora run whose round metrics are shifted by a known
 * amount per seed, in a sweep folder written by the real `SweepWriter`. With seeds 1, 2, 3 the shifts
 * are −0.06, 0, +0.06 (then clamped to [0, 1]), so each median over seeds is the recorded run's value
 * and each interval lies within ±0.06 of it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runLayout } from '../../extension/rundir/layout';
import { SweepWriter } from '../../extension/rundir/sweep';
import type { ConfigDocument } from '../../extension/rundir/schema';
import { BIPOLICY_ID, FIXTURE_DIR, SHARED_ID } from '../fixtures/make-recorded-run';

export const SWEEP_SHIFT = 0.06;
const RECORDED: Record<string, string> = { bipolicy: BIPOLICY_ID, 'shared-lora': SHARED_ID };

/** How much seed `seed` shifts every round metric of its runs. */
export const shiftOf = (seed: number) => (seed - 2) * SWEEP_SHIFT;

export interface RecordedSweep {
  dir: string;
  writer: SweepWriter;
}

/**
 * Writes the sweep into `runsFolder`. Seeds left out of `started` (all by default) have no run
 * directory yet: the sweep is still going.
 */
export function makeRecordedSweep(runsFolder: string, options: { seeds?: number[]; started?: number[]; name?: string; created?: Date } = {}): RecordedSweep {
  const seeds = options.seeds ?? [1, 2, 3];
  const started = new Set(options.started ?? seeds);
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, BIPOLICY_ID, 'config.json'), 'utf8')) as ConfigDocument;
  const writer = SweepWriter.create(runsFolder, { name: options.name ?? 'sandbox-sweep', seeds, modes: ['bipolicy', 'shared-lora'], config }, options.created ?? new Date('2026-11-25T09:00:00Z'));
  for (const run of writer.info.runs) {
    if (!started.has(run.seed)) continue;
    const dir = writer.runDir(run);
    fs.cpSync(path.join(FIXTURE_DIR, RECORDED[run.mode]), dir, { recursive: true });
    const layout = runLayout(dir);
    const info = JSON.parse(fs.readFileSync(layout.runJson, 'utf8'));
    fs.writeFileSync(layout.runJson, JSON.stringify({ ...info, id: run.id }));
    for (let round = 0; round <= info.rounds_completed; round++) {
      const file = layout.roundJson(round);
      if (!fs.existsSync(file)) continue;
      const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
      for (const [k, v] of Object.entries(doc.metrics as Record<string, number | null>)) if (typeof v === 'number') doc.metrics[k] = Math.min(1, Math.max(0, Math.round((v + shiftOf(run.seed)) * 1e6) / 1e6));
      fs.writeFileSync(file, JSON.stringify(doc));
    }
  }
  writer.setStatus(started.size === seeds.length ? 'completed' : 'running');
  return { dir: writer.dir, writer };
}
