/**
 * Bundles the panels for the browser tests with the options scripts/build.mjs uses, into a folder of
 * their own: the tests always load the code they test, whatever state dist/ is in.
 */
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
export const TEST_BUNDLE_DIR = path.join(ROOT, 'test-artifacts', 'webview-bundle');

export async function buildPanels(outdir: string = TEST_BUNDLE_DIR): Promise<string> {
  const panels = path.join(ROOT, 'webview', 'panels');
  const entryPoints = Object.fromEntries(
    fs
      .readdirSync(panels)
      .filter((f) => f.endsWith('.ts'))
      .map((f) => [f.replace(/\.ts$/, ''), path.join(panels, f)]),
  );
  await esbuild.build({
    entryPoints,
    bundle: true,
    sourcemap: true,
    logLevel: 'error',
    absWorkingDir: ROOT,
    outdir,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    loader: { '.css': 'text' },
  });
  return outdir;
}
