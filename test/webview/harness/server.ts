/**
 * Serves the panels as VS Code would, from a local http server on 127.0.0.1: each panel's page is
 * built by the real buildWebviewHtml (same Content-Security-Policy, nonce and all), with the bundled
 * script from dist/webview/ and the styles from media/, plus a dark theme's variables.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { buildWebviewHtml, makeNonce } from '../../../extension/host/webview-html';
import type { PanelKind } from '../../../webview/protocol';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TITLES: Record<PanelKind, string> = { dashboard: 'ABSP Dashboard', stepper: 'ABSP Dialogue Stepper', 'adapter-diff': 'ABSP Adapter Diff' };
const TYPES: Record<string, string> = { '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json', '.html': 'text/html' };


export interface PanelServer {
  origin: string;
  /** The panel's page; throws when its bundle has not been built. */
  panelUrl(panel: PanelKind): string;
  close(): Promise<void>;
}

/** Serves the panel bundles from bundleDir (dist/webview by default, where scripts/build.mjs puts them). */
export async function startPanelServer(bundleDir: string = path.join(ROOT, 'dist', 'webview')): Promise<PanelServer> {
  // URL path prefix → the folder it serves.
  const STATIC: [string, string][] = [
    ['/dist/webview/', bundleDir],
    ['/media/', path.join(ROOT, 'media')],
    ['/harness/', __dirname],
  ];
  let origin = '';
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    const panel = /^\/panel\/([a-z-]+)$/.exec(url.pathname)?.[1] as PanelKind | undefined;
    if (panel && panel in TITLES) {
      const html = buildWebviewHtml({
        panel,
        title: TITLES[panel],
        cspSource: origin,
        nonce: makeNonce(),
        scriptUri: `${origin}/dist/webview/${panel}.js`,
        styleUris: [`${origin}/harness/vscode-dark.css`, `${origin}/media/panel.css`, `${origin}/media/${panel}.css`],
      });
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
      return;
    }
    for (const [prefix, dir] of STATIC) {
      if (!url.pathname.startsWith(prefix)) continue;
      const file = path.join(dir, decodeURIComponent(url.pathname.slice(prefix.length)));
      if (!file.startsWith(dir + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) break;
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      fs.createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end(`not found: ${url.pathname}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    panelUrl: (panel) => {
      const bundle = path.join(bundleDir, `${panel}.js`);
      if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing: run \`node scripts/build.mjs\` first`);
      return `${origin}/panel/${panel}`;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
