/**
 * The adapter-diff job: reads the two adapters once each, checks them against the run's base model
 * when it is on this machine, and compares them module by module (adapter-diff.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fitAdapter, readPeftAdapter, type PeftAdapter } from '../engine/lora/adapter';
import { readConfig, type ModelConfig } from '../engine/model/model-config';
import { resolveModelDir } from '../engine/model/model-dir';
import { diffAdapters } from './adapter-diff';
import { JobError, type JobContext } from './job';
import type { AdapterDiff, PanelJobOf } from './protocol';

export function adapterDiffJob(job: PanelJobOf<'adapter-diff'>, ctx: JobContext): AdapterDiff {
  const read = (dir: string): PeftAdapter => {
    if (!fs.existsSync(dir)) throw new JobError(`${dir} does not exist: the round has no such adapter`);
    return readPeftAdapter(dir);
  };
  const left = read(job.left);
  const right = read(job.right);
  // The comparison needs only the two adapters; one that does not fit the run's base model is still
  // compared, with a warning, since that is exactly what the user may be trying to find out.
  const base = baseConfigIfPresent(job.baseModel);
  const warnings = base ? [left, right].map((a) => fitsBase(a, base.config, base.dir)).filter((w): w is string => w !== null) : [];
  for (const [key, l] of left.modules) {
    const r = right.modules.get(key);
    if (r && (r.inFeatures !== l.inFeatures || r.outFeatures !== l.outFeatures)) {
      throw new JobError(
        `the two adapters do not belong to the same base model: ${key} is ${l.outFeatures}×${l.inFeatures} in ${job.left} but ${r.outFeatures}×${r.inFeatures} in ${job.right}`,
      );
    }
  }
  const diff = diffAdapters(left, right, (done, total) => {
    ctx.checkCancelled();
    ctx.progress(done, total);
  });
  return { ...diff, warnings: [...warnings, ...diff.warnings] };
}

function baseConfigIfPresent(model: string | null): { dir: string; config: ModelConfig } | null {
  if (!model) return null;
  const dir = resolveModelDir(model);
  if (!fs.existsSync(path.join(dir, 'config.json'))) return null;
  try {
    return { dir, config: readConfig(dir) };
  } catch {
    return null;
  }
}

/** The engine's own check of every module's shape against the model; its message names the tensor. */
function fitsBase(adapter: PeftAdapter, config: ModelConfig, modelDir: string): string | null {
  try {
    fitAdapter(adapter, config);
    return null;
  } catch (e) {
    return `${adapter.dir} does not fit the run's base model ${modelDir}: ${(e as Error).message}`;
  }
}
