/** Shared pieces of the host tests: the built bundles, a tiny model and run config, waiting. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeTinySandboxModel } from '../helpers/random-checkpoint';
import { tempDir as makeTempDir } from '../helpers/temp-dirs';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI_ENTRY = path.join(ROOT, 'bin', 'absp.js');
export const WORKER_SCRIPT = path.join(ROOT, 'dist', 'panel-worker.js');
export const RECORDED = path.join(ROOT, 'test', 'fixtures', 'recorded');
export const BIPOLICY = '2026-11-23T22-50-01-sandbox-bipolicy';
export const SHARED = '2026-11-23T23-20-07-sandbox-shared-lora';

let built = false;
/** The host starts the real bundles (dist/cli.js, dist/panel-worker.js): build them once per test process. */
export function ensureBuilt(): void {
  if (built) return;
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  built = true;
}

export function tempDir(prefix = 'absp-host-'): string {
  return makeTempDir(prefix);
}

let tinyModel: string | null = null;
export function tinyModelDir(): string {
  if (!tinyModel) tinyModel = writeTinySandboxModel(path.join(tempDir('absp-host-model-'), 'model'));
  return tinyModel;
}

/** A run config on the tiny model; `overrides` are merged at the top level. */
export function writeTinyConfig(dir: string, overrides: Record<string, unknown> = {}, name = 'tiny.absp.json'): string {
  const config = {
    name: 'tiny',
    model: tinyModelDir(),
    rounds: 1,
    steps_per_round: 2,
    game: { seeds_per_step: 4, max_new_tokens: { attacker: 5, defender: 5 } },
    evaluation: { nash_gap: false, crossplay: false },
    baselines: [],
    ...overrides,
  };
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export async function waitFor<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 60000, everyMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function copyDir(src: string, dst: string): string {
  fs.cpSync(src, dst, { recursive: true });
  return dst;
}

export { fingerprint } from '../rundir/helpers';
