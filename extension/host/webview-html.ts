/**
 * The HTML page of a webview panel. Pure (no `vscode` import) so that the extension host and the
 * browser test harness build exactly the same page: the host passes `webview.cspSource` and
 * `webview.asWebviewUri(...)` strings, the harness its local server's origin and paths.
 *
 * The Content-Security-Policy allows nothing by default; scripts only with the page's nonce, styles,
 * images and fonts only from the extension's own resources. Panel scripts build the DOM with
 * textContent, never innerHTML: transcripts hold adversarial text written to make models misbehave.
 */
import type { PanelKind } from '../../webview/protocol';

export interface WebviewHtmlOptions {
  panel: PanelKind;
  title: string;
  /** `webview.cspSource` in VS Code. */
  cspSource: string;
  /** A fresh random value for every page load (makeNonce()). */
  nonce: string;
  scriptUri: string;
  styleUris: readonly string[];
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource}`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
  ].join('; ');
}

export function buildWebviewHtml(o: WebviewHtmlOptions): string {
  if (!/^[A-Za-z0-9+/=_-]{16,}$/.test(o.nonce)) throw new Error('buildWebviewHtml: the nonce must be at least 16 random base64 characters');
  const styles = o.styleUris.map((u) => `    <link rel="stylesheet" href="${attr(u)}">`).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <meta http-equiv="Content-Security-Policy" content="${attr(contentSecurityPolicy(o.cspSource, o.nonce))}">
    <meta name="viewport" content="width=device-width, initial-scale=1.0">
${styles}
    <title>${text(o.title)}</title>
  </head>
  <body data-panel="${attr(o.panel)}">
    <main id="app" aria-busy="true">
      <p class="boot-message">Loading ${text(o.title)}… If this message stays, the panel's script did not load; see the ABSP Lab output channel.</p>
    </main>
    <script nonce="${attr(o.nonce)}" src="${attr(o.scriptUri)}"></script>
  </body>
</html>
`;
}

/** 32 random bytes, base64url: unguessable, and safe inside an attribute and a CSP source list. */
export function makeNonce(): string {
  const bytes = new Uint8Array(32);
  globalThis.crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function text(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function attr(s: string): string {
  return text(s).replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}
