/**
 * The webview panels on the editor's side: one panel per kind (dashboard, stepper, adapter diff),
 * created with scripts enabled and `localResourceRoots` limited to the extension's dist/ and media/
 * and the runs folder, its page from webview-html.ts (fresh nonce, strict CSP), and its messages
 * handled by a PanelSession. Panels keep their own state with setState, so they need no
 * retainContextWhenHidden; after a window reload VS Code hands them back to the serializer, which
 * reconnects them.
 */
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import { notify } from './notify';
import type { PanelKind } from '../../webview/protocol';
import { PanelSession, type Focus, type PanelServices } from './panel-session';
import { buildWebviewHtml, makeNonce } from './webview-html';

export const PANEL_TITLES: Record<PanelKind, string> = {
  dashboard: 'ABSP Dashboard',
  stepper: 'ABSP Dialogue Stepper',
  'adapter-diff': 'ABSP Adapter Diff',
};

const PANEL_ICONS: Record<PanelKind, string> = { dashboard: 'dashboard', stepper: 'stepper', 'adapter-diff': 'adapter-diff' };

export const viewTypeOf = (kind: PanelKind) => `abspLab.${kind}`;

interface OpenPanel {
  panel: vscode.WebviewPanel;
  session: PanelSession;
}

export class PanelManager implements vscode.Disposable {
  private readonly open = new Map<PanelKind, OpenPanel>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly services: PanelServices,
    private readonly runsFolder: () => string,
    private readonly log: (line: string) => void,
  ) {
    for (const kind of Object.keys(PANEL_TITLES) as PanelKind[]) {
      this.disposables.push(
        vscode.window.registerWebviewPanelSerializer(viewTypeOf(kind), {
          deserializeWebviewPanel: async (panel) => {
            // The panel's own saved state (getState) decides what it shows; no focus from here.
            this.attach(kind, panel, null);
          },
        }),
      );
    }
  }

  /** Opens (or reveals) a panel, showing `focus` when given. */
  show(kind: PanelKind, focus: Focus = null): vscode.WebviewPanel {
    const existing = this.open.get(kind);
    if (existing) {
      existing.panel.reveal(existing.panel.viewColumn ?? vscode.ViewColumn.Active);
      if (focus) void existing.session.setFocus(focus);
      return existing.panel;
    }
    const panel = vscode.window.createWebviewPanel(viewTypeOf(kind), PANEL_TITLES[kind], vscode.ViewColumn.Active, this.webviewOptions());
    this.attach(kind, panel, focus);
    return panel;
  }

  isOpen(kind: PanelKind): boolean {
    return this.open.has(kind);
  }

  /** The webview of an open panel (for the end-to-end test's inspection and for commands). */
  panel(kind: PanelKind): vscode.WebviewPanel | undefined {
    return this.open.get(kind)?.panel;
  }

  /** Polls the runs every panel watches; called on the host's refresh timer. */
  async tick(): Promise<void> {
    for (const { session } of this.open.values()) await session.tick();
  }

  /** The runs list changed: tell every panel. */
  async pushRuns(): Promise<void> {
    for (const { session } of this.open.values()) await session.pushRuns();
  }

  private webviewOptions(): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return {
      enableScripts: true,
      enableFindWidget: true,
      localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, 'dist'), vscode.Uri.joinPath(this.extensionUri, 'media'), vscode.Uri.file(this.runsFolder())],
    };
  }

  private attach(kind: PanelKind, panel: vscode.WebviewPanel, focus: Focus): void {
    this.open.get(kind)?.panel.dispose();
    panel.webview.options = this.webviewOptions();
    panel.iconPath = {
      light: vscode.Uri.joinPath(this.extensionUri, 'media', 'icons', `${PANEL_ICONS[kind]}-light.svg`),
      dark: vscode.Uri.joinPath(this.extensionUri, 'media', 'icons', `${PANEL_ICONS[kind]}-dark.svg`),
    };
    const session = new PanelSession((m) => panel.webview.postMessage(m), this.services, { kind, focus });
    const entry = { panel, session };
    this.open.set(kind, entry);
    const sub = panel.webview.onDidReceiveMessage((m) => void session.receive(m));
    panel.onDidDispose(() => {
      sub.dispose();
      session.dispose();
      if (this.open.get(kind) === entry) this.open.delete(kind);
    });
    panel.webview.html = this.html(kind, panel.webview);
  }

  private html(kind: PanelKind, webview: vscode.Webview): string {
    const script = vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview', `${kind}.js`);
    if (!fs.existsSync(script.fsPath)) {
      this.log(`panel ${kind}: ${script.fsPath} is missing; the extension was not built completely (npm run build)`);
      void notify.error(`ABSP Lab: the ${PANEL_TITLES[kind]} cannot load: ${script.fsPath} is missing (the extension was not built completely).`);
    }
    const media = (name: string) => webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'media', name)).toString();
    return buildWebviewHtml({
      panel: kind,
      title: PANEL_TITLES[kind],
      cspSource: webview.cspSource,
      nonce: makeNonce(),
      scriptUri: webview.asWebviewUri(script).toString(),
      styleUris: [media('panel.css'), media(`${kind}.css`)],
    });
  }

  dispose(): void {
    for (const { panel } of [...this.open.values()]) panel.dispose();
    this.open.clear();
    for (const d of this.disposables) d.dispose();
  }
}
