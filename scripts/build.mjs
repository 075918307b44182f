// Bundles the Node side (extension host, command line, panel worker) as CommonJS and the webviews as
// browser scripts. onnxruntime-node stays external: it loads a native binary next to its own files.
import * as esbuild from 'esbuild';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

const root = path.dirname(path.dirname(new URL(import.meta.url).pathname));
const watch = process.argv.includes('--watch');

const nodeEntries = {
  extension: 'extension/host/extension.ts',
  cli: 'extension/cli/main.ts',
  'panel-worker': 'extension/panel-worker/worker.ts',
};
const presentNode = Object.fromEntries(
  Object.entries(nodeEntries).filter(([, file]) => existsSync(path.join(root, file))),
);

const webviewDir = path.join(root, 'webview', 'panels');
const webviewEntries = existsSync(webviewDir)
  ? Object.fromEntries(
      readdirSync(webviewDir)
        .filter((f) => f.endsWith('.ts'))
        .map((f) => [`webview/${f.replace(/\.ts$/, '')}`, path.join('webview', 'panels', f)]),
    )
  : {};

const common = { bundle: true, sourcemap: true, logLevel: 'warning', absWorkingDir: root, outdir: 'dist' };
// Node 21+ has a global `navigator`, and VS Code's extension host reports any read of it as a
// PendingMigrationError. zod reads it once (typeof navigator, to detect Cloudflare Workers); in a Node
// bundle it means nothing, so it is compiled away.
const builds = [
  { ...common, entryPoints: presentNode, platform: 'node', format: 'cjs', target: 'node20', external: ['vscode', 'onnxruntime-node'], define: { navigator: 'undefined' } },
];
if (Object.keys(webviewEntries).length > 0) {
  builds.push({ ...common, entryPoints: webviewEntries, platform: 'browser', format: 'iife', target: 'es2022', minify: true, loader: { '.css': 'text' } });
}

if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
