/**
 * Drives a panel in headless Chromium (Debian's, through playwright-core: no browser download). The
 * page gets a fake acquireVsCodeApi before any of its scripts run: postMessage goes to the FakeHost
 * in this process, the host's replies arrive as window message events (as in VS Code), and
 * getState/setState live in sessionStorage so they survive a reload like VS Code's webview state.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { PanelKind } from '../../../webview/protocol';
import type { FakeHost } from './fake-host';
import { THEMES, applyThemeInPage, type ThemeName } from './themes';
import type { PanelServer } from './server';

export const ARTIFACTS = path.resolve(__dirname, '..', '..', '..', 'test-artifacts');

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** Installed before the page's own scripts; VS Code allows one acquireVsCodeApi() call per page. */
const FAKE_VSCODE_API = `(() => {
  const KEY = '__abspWebviewState';
  let acquired = false;
  window.acquireVsCodeApi = () => {
    if (acquired) throw new Error('An instance of the VS Code API has already been acquired');
    acquired = true;
    return Object.freeze({
      postMessage: (message) => { window.__abspToHost(JSON.parse(JSON.stringify(message))); },
      getState: () => { const s = sessionStorage.getItem(KEY); return s === null ? undefined : JSON.parse(s); },
      setState: (state) => { sessionStorage.setItem(KEY, JSON.stringify(state)); return state; },
    });
  };
})();`;

export interface PanelPage {
  page: Page;
  host: FakeHost;
  /** Console errors, page errors and Content-Security-Policy violations seen so far. */
  problems: string[];
  /** Sends a message to the panel as the host would (anything, to test validation). */
  post(message: unknown): Promise<void>;
  /** Waits until the fake host has handled everything the panel sent so far. */
  settle(): Promise<void>;
  screenshot(name: string): Promise<string>;
  /** A window reload: a new page and a new host session (no focus), the saved state kept. */
  reload(): Promise<void>;
  /**
   * Hiding the panel behind another tab and showing it again: VS Code drops the page and builds it
   * again (no retainContextWhenHidden), the host session and the saved state stay.
   */
  hideAndShow(): Promise<void>;
  /** Switches the page to a theme of themes.ts the way VS Code does (variables on <html>, class on <body>). */
  setTheme(theme: ThemeName): Promise<void>;
  close(): Promise<void>;
}

export async function openPanel(
  browser: Browser,
  server: PanelServer,
  panel: PanelKind,
  host: FakeHost,
  viewport = { width: 1280, height: 900 },
): Promise<PanelPage> {
  const context = await browser.newContext({ viewport, colorScheme: 'dark' });
  const page = await context.newPage();
  const problems: string[] = [];
  let pending: Promise<unknown> = Promise.resolve();

  page.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy|Refused to/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.exposeBinding('__abspToHost', (_source, message: unknown) => {
    pending = pending.then(() => host.receive(message));
  });
  await page.addInitScript(FAKE_VSCODE_API);
  // Report CSP violations from inside the page too (some never reach the console).
  await page.addInitScript(`document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI + ' at ' + e.sourceFile + ':' + e.lineNumber + ':' + e.columnNumber));`);

  const post = async (message: unknown) => {
    await page.evaluate((m) => window.postMessage(m, '*'), message);
  };
  host.connect(async (message) => {
    if (!page.isClosed()) await post(message);
  });

  const settle = async () => {
    // Messages posted by the page reach the binding asynchronously; let them arrive, then drain.
    for (let i = 0; i < 3; i++) {
      await page.evaluate(() => new Promise((r) => setTimeout(r, 20)));
      await pending;
    }
  };

  await page.goto(server.panelUrl(panel));
  await settle();

  return {
    page,
    host,
    problems,
    post,
    settle,
    async screenshot(name) {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const file = path.join(ARTIFACTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    async reload() {
      host.reset();
      await page.reload();
      await settle();
    },
    async hideAndShow() {
      await page.reload();
      await settle();
    },
    async setTheme(theme) {
      await page.evaluate(applyThemeInPage, THEMES[theme]);
    },
    async close() {
      await context.close();
    },
  };
}
