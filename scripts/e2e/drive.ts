/**
 * The end-to-end test's browser side: drives ABSP Lab inside a real VS Code workbench (code-server,
 * with the extension installed from the .vsix) in Debian's headless Chromium through playwright-core.
 * It starts a run on a tiny model from the command palette, watches the Runs view fill, opens the
 * dashboard and the stepper, annotates an exchange with the Comments API, and checks the run directory.
 * Screenshots of each step go to the artifacts folder. Started by scripts/e2e/run.sh:
 *
 *   npx tsx scripts/e2e/drive.ts URL WORKSPACE ARTIFACTS
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Frame, type Page } from 'playwright-core';
import { positionAt, renderExchange } from '../../extension/host/exchange-document';
import { RunReader } from '../../extension/rundir';

const [url, workspace, artifacts] = process.argv.slice(2);
if (!url || !workspace || !artifacts) {
  console.error('usage: drive.ts URL WORKSPACE ARTIFACTS');
  process.exit(2);
}

const started = Date.now();
const step = (what: string) => console.log(`e2e [${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);
let shot = 0;

async function screenshot(page: Page, name: string): Promise<void> {
  shot += 1;
  await page.screenshot({ path: path.join(artifacts, `${String(shot).padStart(2, '0')}-${name}.png`) });
}

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 60000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs a command from the command palette by its title, optionally answering its quick pick. */
async function command(page: Page, title: string): Promise<void> {
  const input = await openPalette(page);
  await input.fill(`>${title}`);
  const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first();
  await row.waitFor({ state: 'visible', timeout: 20000 });
  await row.click();
}

/**
 * Opens the command palette (F1), trying again if the key went to a closing quick input or a
 * webview: a webview with the focus keeps the keyboard, so the workbench gets it back first.
 */
async function openPalette(page: Page) {
  const input = page.locator('.quick-input-widget input');
  for (let attempt = 0; ; attempt++) {
    await page.locator('.quick-input-widget:visible').waitFor({ state: 'hidden', timeout: 5000 }).catch(() => {});
    if (attempt > 0) await page.locator('.part.sidebar .composite.title .title-label').first().click();
    await page.keyboard.press('F1');
    try {
      await input.waitFor({ state: 'visible', timeout: 5000 });
      return input;
    } catch (e) {
      if (attempt >= 2) throw e;
    }
  }
}

/** Whether the command palette offers a command (its `when` clause holds). */
async function paletteOffers(page: Page, title: string): Promise<boolean> {
  const input = await openPalette(page);
  await input.fill(`>${title}`);
  await page.waitForTimeout(700);
  const offered = (await page.locator('.quick-input-widget .monaco-list-row .label-name', { hasText: new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`) }).count()) > 0;
  await page.keyboard.press('Escape');
  await input.waitFor({ state: 'hidden', timeout: 5000 }).catch(() => {});
  return offered;
}

async function pick(page: Page, label: string): Promise<void> {
  const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: label }).first();
  await row.waitFor({ state: 'visible', timeout: 20000 });
  await row.click();
}

/** The frame of a webview panel (VS Code nests it in two iframes); found by the page's data-panel. */
async function panelFrame(page: Page, panel: string): Promise<Frame> {
  return until(`the ${panel} webview`, async () => {
    for (const f of page.frames()) {
      try {
        if ((await f.evaluate(() => document.body?.dataset.panel ?? null)) === panel) return f;
      } catch {
        /* a frame being replaced */
      }
    }
    return null;
  });
}

function runsIn(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((n) => n !== 'broken-run' && fs.existsSync(path.join(dir, n, 'run.json')));
  } catch {
    return [];
  }
}

/** The theme labels of VS Code 1.139's theme picker, and the kind the panels read from the body class. */
const THEMES = { dark: 'Dark Modern', light: 'Light Modern', 'high-contrast': 'Dark High Contrast', 'high-contrast-light': 'Light High Contrast' } as const;

/** Switches the colour theme as a user does: Preferences: Color Theme, then the theme's name. */
async function setTheme(page: Page, kind: keyof typeof THEMES): Promise<void> {
  // A webview keeps the keyboard when it has the focus: give it back to the workbench first.
  await page.locator('.part.sidebar .composite.title .title-label').first().click();
  const input = await openPalette(page);
  await input.fill('>Preferences: Color Theme');
  await page.locator('.quick-input-widget .monaco-list-row', { has: page.locator('.label-name', { hasText: /^Preferences: Color Theme$/ }) }).first().click();
  await input.fill(THEMES[kind]);
  await page.locator('.quick-input-widget .monaco-list-row', { has: page.locator('.label-name', { hasText: new RegExp(`^${THEMES[kind]}$`) }) }).first().click();
}

/** The runs the dashboard's table has checked, and each run's colour. */
async function dashboardRuns(frame: Frame): Promise<{ checked: string[]; colours: Record<string, string> }> {
  return frame.evaluate(() => {
    const rows = [...document.querySelectorAll<HTMLElement>('tr.run-row')].filter((r) => !r.classList.contains('has-error'));
    return {
      checked: rows.filter((r) => (r.querySelector('vscode-checkbox') as HTMLElement & { checked: boolean }).checked).map((r) => r.dataset.run!).sort(),
      colours: Object.fromEntries(rows.map((r) => [r.dataset.run!, (r.querySelector('.swatch') as HTMLElement).style.background])),
    };
  });
}

/** WCAG contrast of two CSS colours given as rgb()/hex (the panels' own palette module is for the browser). */
function luminance(colour: string): number {
  const hex = /^#([0-9a-f]{6})/i.exec(colour);
  const rgb = hex ? [0, 2, 4].map((i) => parseInt(hex[1].slice(i, i + 2), 16)) : (/(\d+)[, ]+(\d+)[, ]+(\d+)/.exec(colour) ?? []).slice(1, 4).map(Number);
  const [r, g, b] = rgb.map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function contrast(a: string, b: string): number {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

async function main(): Promise<void> {
  fs.mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  try {
    step('opening the workbench');
    // The workbench's first load takes long on a loaded machine (it timed out at Playwright's 30 s at load 16).
    await page.goto(`${url}/?folder=${encodeURIComponent(workspace)}`, { timeout: 120000 });
    await page.waitForSelector('.monaco-workbench', { timeout: 90000 });
    const activity = page.locator('.activitybar [aria-label="ABSP Lab"]').first();
    await activity.waitFor({ timeout: 60000 });
    await activity.click();
    await page.locator('.pane-header', { hasText: 'Runs' }).first().waitFor();
    // The workspace's runs folder holds a damaged run: listed, with the reason, not hidden.
    const broken = page.locator('.monaco-list-row', { hasText: 'broken-run' }).first();
    await broken.waitFor({ timeout: 30000 });
    assert.match((await broken.textContent()) ?? '', /cannot open: corrupt/);
    await screenshot(page, 'runs-view-before');

    step('the palette offers only what applies: no Stop or Resume while nothing runs or can resume');
    await until('the recorded runs listed', async () => (await page.locator('.monaco-list-row', { hasText: 'sandbox-bipolicy' }).count()) > 0, 30000);
    assert.equal(await paletteOffers(page, 'ABSP: Stop Run'), false, 'Stop Run with nothing running');
    assert.equal(await paletteOffers(page, 'ABSP: Resume Run'), false, 'Resume Run with nothing to resume');
    assert.equal(await paletteOffers(page, 'ABSP: Export Annotated Failures as Seeds'), true, 'the recorded ABSP run has annotations');
    assert.equal(await paletteOffers(page, 'ABSP: Open Dashboard'), true);

    step('starting a run from the command palette (ABSP: Start Run… → tiny.absp.json)');
    const runsFolder = path.join(workspace, 'runs');
    const recorded = runsIn(runsFolder);
    await command(page, 'ABSP: Start Run');
    await pick(page, 'tiny.absp.json');
    const runId = await until('the run directory', () => runsIn(runsFolder).find((n) => !recorded.includes(n)), 60000);
    const runDir = path.join(runsFolder, runId);
    step(`run directory ${runId}`);
    // The Runs view names it "tiny · <start time>", not by its timestamped folder.
    // Visible rows only: a closed quick pick keeps its (hidden) rows in the page.
    const runRow = page.locator('.monaco-list-row', { hasText: /tiny · \d+ \w{3} \d\d:\d\d/ }).filter({ visible: true }).first();
    await runRow.waitFor({ timeout: 30000 });
    // Progress goes to the status bar, never to a notification that stays up (or whose button stops the run).
    await until('progress in the status bar', async () => (await page.locator('.statusbar-item', { hasText: 'ABSP run' }).count()) > 0 || JSON.parse(fs.readFileSync(path.join(runsFolder, runId, 'run.json'), 'utf8')).status === 'completed', 30000);
    assert.equal(await page.locator('.notification-toast', { hasText: 'ABSP: run' }).count(), 0, 'no progress notification');
    await screenshot(page, 'run-started');
    await until('the run to complete', () => JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8')).status === 'completed', 120000);
    await until('the Runs view to show it completed', async () => /completed · 2\/2 rounds/.test((await runRow.textContent()) ?? ''), 30000);
    await runRow.locator('.monaco-tl-twistie').click();
    await page.locator('.monaco-list-row', { hasText: 'Round 2' }).first().waitFor();
    await page.locator('.monaco-list-row', { hasText: 'Round 2' }).first().locator('.monaco-tl-twistie').click();
    await page.locator('.monaco-list-row', { hasText: 'Transcript' }).first().waitFor();
    await page.locator('.monaco-list-row', { hasText: /^defender/ }).first().waitFor();
    await until('the completion notification', () => page.locator('.notification-toast', { hasText: `Run ${runId} completed (2 of 2 rounds)` }).first().isVisible(), 30000);
    await screenshot(page, 'runs-view-filled');

    step('the dashboard (opened by the run) shows its charts');
    const dashboard = await panelFrame(page, 'dashboard');
    await until('chart series for the run', async () => {
      const raw = await dashboard.getAttribute('figure[data-chart="asr"]', 'data-series').catch(() => null);
      return raw && (JSON.parse(raw) as { points: number }[]).some((s) => s.points === 6);
    });
    await screenshot(page, 'dashboard');

    step('three runs overlaid from the runs table');
    await until('the runs table with the three runs', async () => (await dashboard.locator('tr.run-row:not(.has-error)').count()) === 3);
    for (const run of recorded) await dashboard.click(`vscode-checkbox[data-run="${path.join(runsFolder, run)}"]`);
    await until('three runs in the charts', async () => {
      const raw = await dashboard.getAttribute('figure[data-chart="nash-gap"]', 'data-series').catch(() => null);
      return raw && (JSON.parse(raw) as unknown[]).length === 3;
    });
    const overlaid = await dashboardRuns(dashboard);
    assert.equal(overlaid.checked.length, 3);
    assert.equal(new Set(Object.values(overlaid.colours)).size, 3, 'three colours');
    await screenshot(page, 'dashboard-three-runs');

    step('the dialogue stepper at round 2 (from the Runs view), j steps');
    await page.locator('.monaco-list-row', { hasText: 'Transcript' }).first().click();
    const stepper = await panelFrame(page, 'stepper');
    await stepper.waitForSelector('article.exchange');
    await until('the position', async () => /^1 \/ \d+$/.test((await stepper.textContent('#position')) ?? ''));
    await stepper.locator('body').press('j');
    await until('the stepper to move on j', async () => /^2 \/ \d+$/.test((await stepper.textContent('#position')) ?? ''));
    const exchangeId = (await stepper.getAttribute('article.exchange', 'data-exchange-id'))!;
    await screenshot(page, 'stepper');

    step('back to the dashboard tab: the three runs are still overlaid, in the same colours');
    await page.locator('.tab', { hasText: 'ABSP Dashboard' }).first().click();
    const dashboardAgain = await panelFrame(page, 'dashboard');
    await until('the dashboard rebuilt with its runs', async () => (await dashboardRuns(dashboardAgain).catch(() => ({ checked: [] as string[] }))).checked.length === 3, 30000);
    assert.deepEqual(await dashboardRuns(dashboardAgain), overlaid, 'hiding the panel kept its overlay and colours');
    await page.locator('.tab', { hasText: 'ABSP Dialogue Stepper' }).first().click();
    await until('the stepper back at the same exchange', async () => {
      const f = await panelFrame(page, 'stepper');
      return (await f.getAttribute('article.exchange', 'data-exchange-id').catch(() => null)) === exchangeId;
    });

    step('replaying the exchange against the round 2 defender (ONNX Runtime in the panel worker)');
    const stepperShown = await panelFrame(page, 'stepper');
    await stepperShown.click('vscode-button[data-name="replay"]');
    await stepperShown.waitForSelector('[data-replay="done"], [data-replay="error"]', { timeout: 60000 });
    const failed = stepperShown.locator('[data-replay="error"]');
    if (await failed.count()) assert.fail(`the replay failed: ${await failed.textContent()}`);
    assert.equal(await stepperShown.getAttribute('.replay-result', 'data-adapter-round'), '2');
    // Round 2 was played by the adapters round 1 saved; the replay used round 2's own defender.
    assert.equal(await stepperShown.textContent('[data-part="replay-who"]'), 'played: defender of round 1 · replay: defender of round 2');
    for (const part of ['recorded', 'replayed']) assert.ok(await stepperShown.getAttribute(`[data-answer="${part}"]`, 'data-outcome'), `the ${part} answer has its own outcome`);
    await stepperShown.locator('[data-replay="done"]').scrollIntoViewIfNeeded();
    await screenshot(page, 'replay');

    step(`annotating exchange ${exchangeId} in the editor`);
    const editor = page.locator('.editor-instance .monaco-editor', { hasText: `Exchange ${exchangeId}` }).filter({ visible: true }).first();
    // On a loaded machine a click in a webview right after it re-rendered can be lost (seen at load 16):
    // the button is pressed again until the document shows (opening it twice only reveals it again).
    await until(
      'the exchange document',
      async () => {
        await stepperShown.click('vscode-button[data-name="annotate"]', { timeout: 10000 }).catch(() => {});
        return editor.waitFor({ timeout: 20000 }).then(
          () => true,
          () => false,
        );
      },
      90000,
    );
    // Select the defender's answer: the document's layout comes from the same renderer the extension uses.
    const x = RunReader.open(runDir).transcript(Number(/^r(\d+)/.exec(exchangeId)![1])).find((e) => e.id === exchangeId)!;
    const doc = renderExchange(x, runId);
    const answer = doc.fields.find((f) => f.field === 'turns.0.defender.text')!;
    const line = positionAt(doc.text, answer.start).line + 1;
    await editor.locator('.view-lines').click();
    await page.keyboard.press('Control+G');
    await page.keyboard.type(String(line));
    await page.keyboard.press('Enter');
    await page.keyboard.press('Home');
    await page.keyboard.press('Shift+End');
    await command(page, 'Add Comment on Current Selection');
    const commentBox = page.locator('.review-widget .comment-form textarea, .review-widget .comment-form .monaco-editor textarea').first();
    await commentBox.waitFor({ timeout: 20000 });
    await page.keyboard.type('role-play frame gets through');
    await screenshot(page, 'comment-typed');
    await page.locator('.review-widget').getByRole('button', { name: 'Jailbreak' }).first().click();

    const annotation = await until('annotations.jsonl', () => {
      const file = path.join(runDir, 'annotations.jsonl');
      if (!fs.existsSync(file)) return null;
      const records = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      return records.find((r) => r.op === 'put');
    });
    assert.equal(annotation.exchange, exchangeId);
    assert.equal(annotation.label, 'jailbreak');
    assert.equal(annotation.note, 'role-play frame gets through');
    assert.equal(annotation.span?.field, 'turns.0.defender.text', `the selection became a span of the answer: ${JSON.stringify(annotation.span)}`);
    // Visible ones only: the thread's first (draft) widget can stay in the page, hidden, once it is saved.
    await page.locator('.review-widget', { hasText: 'Jailbreak · Answer' }).filter({ visible: true }).first().waitFor({ timeout: 20000 });
    await screenshot(page, 'annotation-saved');

    step('the annotation shows in the stepper and the Annotations view');
    await until('the stepper to list the annotation', async () => (await stepperShown.getAttribute('[data-part="annotations"]', 'data-count').catch(() => null)) === '1', 30000);
    await page.locator('.monaco-list-row', { hasText: 'jailbreak: role-play frame gets through' }).first().waitFor({ timeout: 30000 });
    await screenshot(page, 'annotations-everywhere');

    step('the adapter diff computes in the panel worker');
    await command(page, 'ABSP: Compare Adapters');
    const diff = await panelFrame(page, 'adapter-diff');
    await until('the comparison', async () => (await diff.locator('table tbody tr').count().catch(() => 0)) > 0, 60000);
    await screenshot(page, 'adapter-diff');

    step('a window reload restores the panels with their state');
    await page.reload();
    await page.waitForSelector('.monaco-workbench', { timeout: 90000 });
    const restored = await panelFrame(page, 'stepper');
    await until('the restored stepper at the same exchange', async () => (await restored.getAttribute('article.exchange', 'data-exchange-id').catch(() => null)) === exchangeId, 60000);
    assert.match((await restored.textContent('#position')) ?? '', /^2 \/ \d+$/);
    await page.locator('.tab', { hasText: 'ABSP Dashboard' }).first().waitFor({ timeout: 30000 });
    // The annotated exchange's document comes back too, in its language, with its annotation.
    const exchangeTab = page.locator('.tab', { hasText: `${exchangeId}.absp-exchange` }).first();
    await exchangeTab.waitFor({ timeout: 30000 });
    await exchangeTab.click(); // another editor of its group (the adapter diff) may be in front of it
    await page.locator('.editor-instance .monaco-editor', { hasText: `Exchange ${exchangeId}` }).first().waitFor({ timeout: 30000 });
    await page.locator('.review-widget', { hasText: 'Jailbreak · Answer' }).filter({ visible: true }).first().waitFor({ timeout: 30000 });
    assert.equal(await page.locator('.editor-group-container .editor-group-watermark:visible').count(), 0, 'no empty editor group is left behind');
    await screenshot(page, 'restored-after-reload');

    step('an off-topic compliance of the recorded ABSP run is named so, not a jailbreak');
    const reopened = await panelFrame(page, 'stepper');
    await reopened.click('vscode-single-select[data-name="run"]');
    await reopened.locator('vscode-single-select[data-name="run"] li[role=option]', { hasText: 'sandbox-bipolicy' }).first().click();
    await reopened.waitForSelector('article.exchange');
    await reopened.click('vscode-single-select[data-name="outcome"]');
    await reopened.locator('vscode-single-select[data-name="outcome"] li[role=option]', { hasText: 'Off-topic compliances' }).first().click();
    await reopened.waitForSelector('article.exchange[data-outcome="off-topic"]');
    assert.equal(await reopened.textContent('article.exchange header [data-outcome]'), 'off-topic compliance');
    assert.equal(await reopened.getAttribute('[data-part="judge"] [data-label="response harmful"]', 'data-value'), 'no');
    assert.equal(await reopened.getAttribute('[data-part="judge"] [data-label="faithful"]', 'data-value'), 'no');
    await reopened.click('[data-part="legend"] summary');
    await screenshot(page, 'stepper-off-topic');

    step('a theme switch recolours the open panels, readably');
    await page.locator('.tab', { hasText: 'ABSP Dashboard' }).first().click();
    let shownDashboard = await panelFrame(page, 'dashboard');
    await until('the dashboard drawn', async () => (await shownDashboard.getAttribute('figure[data-chart="nash-gap"]', 'data-theme').catch(() => null)) === 'dark');
    for (const kind of ['light', 'high-contrast', 'high-contrast-light', 'dark'] as const) {
      await setTheme(page, kind);
      shownDashboard = await panelFrame(page, 'dashboard');
      await until(`the charts redrawn in ${kind}`, async () => {
        const kinds = await shownDashboard.$$eval('figure[data-chart]', (fs) => fs.map((f) => (f as HTMLElement).dataset.theme)).catch(() => []);
        return kinds.length > 0 && kinds.every((k) => k === kind);
      }, 30000);
      const look = await shownDashboard.evaluate(() => ({
        background: getComputedStyle(document.body).backgroundColor,
        text: (document.querySelector('figure[data-chart="nash-gap"]') as HTMLElement).dataset.foreground!,
        swatches: [...document.querySelectorAll<HTMLElement>('tr.run-row .swatch')].map((s) => s.style.background).filter(Boolean),
      }));
      assert.ok(contrast(look.text, look.background) >= 4.5, `${kind}: chart text ${look.text} on ${look.background}`);
      for (const sw of look.swatches) assert.ok(contrast(sw, look.background) >= 3.4, `${kind}: run colour ${sw} on ${look.background}`);
      await screenshot(page, `theme-${kind}-dashboard`);
      if (kind === 'light' || kind === 'high-contrast') {
        await page.locator('.tab', { hasText: 'ABSP Dialogue Stepper' }).first().click();
        await (await panelFrame(page, 'stepper')).waitForSelector('article.exchange');
        await screenshot(page, `theme-${kind}-stepper`);
        await page.locator('.tab', { hasText: 'ABSP Dashboard' }).first().click();
      }
    }

    step('Stop asks first and says what resume will redo; the run stops after its step');
    const before = runsIn(runsFolder);
    await command(page, 'ABSP: Start Run');
    await pick(page, 'long.absp.json');
    const longId = await until('the long run directory', () => runsIn(runsFolder).find((n) => !before.includes(n)), 60000);
    const longDir = path.join(runsFolder, longId);
    await until('the long run to train', () => fs.readFileSync(path.join(longDir, 'events.jsonl'), 'utf8').includes('"type":"step"'), 60000);
    await until('the status bar progress', async () => /ABSP run: round \d+\/40 · step \d+\/120/.test((await page.locator('.statusbar-item', { hasText: 'ABSP run' }).first().textContent().catch(() => '')) ?? ''), 30000);
    await screenshot(page, 'status-bar-progress');
    assert.equal(await paletteOffers(page, 'ABSP: Stop Run'), true, 'Stop Run while a run runs');
    await command(page, 'ABSP: Stop Run');
    await pick(page, 'long');
    const dialog = page.locator('.monaco-dialog-box').first();
    await dialog.waitFor({ timeout: 20000 });
    const said = (await dialog.textContent()) ?? '';
    assert.match(said, /Stop long · \d+ \w{3} \d\d:\d\d\?/);
    assert.match(said, /finishes its current step.*Round \d+ is not complete: (its \d+ steps? so far \(of 3\) (is|are) not kept|it has not finished a step yet)\. Resume replays round \d+ from its first step/s);
    await screenshot(page, 'stop-asks');
    await dialog.locator('.monaco-button', { hasText: 'Stop After This Step' }).first().click();
    await until('the long run stopped', () => JSON.parse(fs.readFileSync(path.join(longDir, 'run.json'), 'utf8')).status === 'stopped', 60000);
    await until('Resume offered', () => paletteOffers(page, 'ABSP: Resume Run'), 30000);

    step('the run directory holds the run, untouched but for annotations.jsonl');
    const info = JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8'));
    assert.equal(info.status, 'completed');
    assert.equal(info.rounds_completed, 2);
    for (const f of ['config.json', 'events.jsonl', 'transcripts/round-0001.jsonl', 'rounds/round-0002/defender/adapter_model.safetensors', 'annotations.jsonl']) assert.ok(fs.existsSync(path.join(runDir, f)), f);
    assert.deepEqual(problems, [], `page errors: ${problems.join('; ')}`);
    step(`passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    await screenshot(page, 'failure').catch(() => {});
    // What the lists held when it failed (a locator's text is easier to fix from this than from pixels).
    const rows = await page
      .$$eval('.monaco-list-row', (els) => els.map((el) => `${(el as HTMLElement).offsetParent ? 'visible' : 'hidden '} ${JSON.stringify(el.textContent)}`))
      .catch(() => [] as string[]);
    fs.writeFileSync(path.join(artifacts, 'failure-list-rows.txt'), `${rows.join('\n')}\n`);
    const widgets = await page
      .$$eval('.review-widget', (els) => els.map((el) => `${(el as HTMLElement).offsetParent ? 'visible' : 'hidden '} ${JSON.stringify(el.textContent)}`))
      .catch(() => [] as string[]);
    fs.writeFileSync(path.join(artifacts, 'failure-comment-widgets.txt'), `${widgets.join('\n')}\n`);
    throw e;
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(`e2e: FAILED: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
