/**
 * The panels as plain browser apps in headless Chromium, fed by the fake host from the recorded runs.
 * Assertions are on what is rendered; screenshots go to test-artifacts/.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { readPeftAdapter as loadLoraAdapter } from '../../extension/engine/lora/adapter';
import { diffAdapters } from '../../extension/panel-worker/adapter-diff';
import { RunReader, RunWriter, outcomeOf } from '../../extension/rundir';
import { num, signed } from '../../webview/lib/format';
import { sweepRowKey } from '../../webview/lib/runs-table';
import { SweepReader } from '../../extension/rundir/sweep';
import { SWEEP_SHIFT, makeRecordedSweep } from '../helpers/recorded-sweep';
import { wilson } from '../../extension/util/stats';
import { contrast } from '../../webview/lib/palette';
import { THEMES } from './harness/themes';
import { BIPOLICY_ID, FIXTURE_DIR, SHARED_ID } from '../fixtures/make-recorded-run';
import { launchBrowser, openPanel, type PanelPage } from './harness/browser';
import { buildPanels } from './harness/build';
import { FakeHost, type FakeHostOptions } from './harness/fake-host';
import { startPanelServer, type PanelServer } from './harness/server';

const bipolicyDir = path.join(FIXTURE_DIR, BIPOLICY_ID);

async function choose(page: Page, select: string, optionText: string): Promise<void> {
  // In the middle of the viewport, so that its list opens where it can be clicked.
  await page.$eval(`vscode-single-select[data-name="${select}"]`, (e) => e.scrollIntoView({ block: 'center' }));
  await page.click(`vscode-single-select[data-name="${select}"]`);
  await page.click(`vscode-single-select[data-name="${select}"] li[role=option]:has-text("${optionText}")`);
}

async function series(page: Page, chart: string): Promise<{ label: string; points: number }[]> {
  const raw = await page.getAttribute(`figure[data-chart="${chart}"]`, 'data-series');
  return raw ? JSON.parse(raw) : [];
}

async function waitForSeries(page: Page, chart: string, test: (s: { label: string; points: number }[]) => boolean): Promise<{ label: string; points: number }[]> {
  const deadline = Date.now() + 10000;
  for (;;) {
    const s = await series(page, chart);
    if (test(s)) return s;
    if (Date.now() > deadline) assert.fail(`chart ${chart} never satisfied ${test}: ${JSON.stringify(s)}`);
    await page.waitForTimeout(25);
  }
}

/** Pixels of a chart's canvas that are not transparent: proof that Chart.js really drew. */
async function drawnPixels(page: Page, chart: string): Promise<number> {
  return page.$eval(`figure[data-chart="${chart}"] canvas`, (c) => {
    const canvas = c as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return n;
  });
}

async function position(page: Page): Promise<{ at: number; of: number; id: string | null }> {
  const text = (await page.textContent('#position')) ?? '';
  const [at, of] = text.split('/').map((s) => Number(s.trim()));
  return { at, of, id: await page.getAttribute('article.exchange', 'data-exchange-id').catch(() => null) };
}

function copyRun(id: string, to: string): string {
  const dest = path.join(to, id);
  fs.cpSync(path.join(FIXTURE_DIR, id), dest, { recursive: true });
  return dest;
}

/** A copy of a recorded run under another id and start time (same name: the labels must still differ). */
function copyRunAs(id: string, to: string, newId: string, created: string): string {
  const dest = path.join(to, newId);
  fs.cpSync(path.join(FIXTURE_DIR, id), dest, { recursive: true });
  const runJson = path.join(dest, 'run.json');
  fs.writeFileSync(runJson, JSON.stringify({ ...JSON.parse(fs.readFileSync(runJson, 'utf8')), id: newId, created }));
  return dest;
}

/** The colour of each run's swatch in the runs table. */
async function swatches(page: Page): Promise<Record<string, string>> {
  return page.$$eval('tr.run-row', (rows) => Object.fromEntries(rows.map((r) => [(r as HTMLElement).dataset.run!, (r.querySelector('.swatch') as HTMLElement).style.background])));
}

async function checkedRuns(page: Page): Promise<string[]> {
  return page.$$eval('tr.run-row vscode-checkbox', (boxes) => boxes.filter((b) => (b as HTMLElement & { checked: boolean }).checked).map((b) => (b as HTMLElement).dataset.run!));
}

/** Pixels of a canvas within `tolerance` of a colour: proof that text or lines were drawn in it. */
async function pixelsNear(page: Page, selector: string, hex: string, tolerance = 24): Promise<number> {
  return page.$eval(
    selector,
    (c, [h, tol]) => {
      const canvas = c as HTMLCanvasElement;
      const want = [1, 3, 5].map((i) => parseInt((h as string).slice(i, i + 2), 16));
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 200 && Math.abs(data[i] - want[0]) + Math.abs(data[i + 1] - want[1]) + Math.abs(data[i + 2] - want[2]) <= (tol as number)) n++;
      return n;
    },
    [hex, tolerance] as const,
  );
}

describe('panels in a browser', function () {
  this.timeout(120000);
  let browser: Browser;
  let server: PanelServer;
  let tmp: string;
  const open: PanelPage[] = [];

  before(async () => {
    server = await startPanelServer(await buildPanels());
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'absp-panels-'));
  });
  afterEach(async function () {
    for (const p of open.splice(0)) {
      // A panel must never log an error or break its Content-Security-Policy, whatever the test did.
      if (this.currentTest?.state === 'passed') assert.deepEqual(p.problems, [], 'console errors or CSP violations');
      await p.close();
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function panel(kind: 'dashboard' | 'stepper' | 'adapter-diff', options: FakeHostOptions = { runsFolder: FIXTURE_DIR }): Promise<PanelPage> {
    const p = await openPanel(browser, server, kind, new FakeHost(options));
    open.push(p);
    return p;
  }

  describe('dashboard', () => {
    it('draws every chart for both runs overlaid, with a point per step or round, and the cross-play heatmap', async () => {
      const p = await panel('dashboard');
      const gap = await waitForSeries(p.page, 'nash-gap', (s) => s.length === 2);
      assert.deepEqual(gap.map((s) => s.points), [4, 4]);
      assert.ok(gap.some((s) => s.label.includes('bipolicy')) && gap.some((s) => s.label.includes('shared-lora')));
      assert.deepEqual((await series(p.page, 'rewards')).map((s) => s.points).sort(), [11, 12, 12, 12], 'one attacker step had no attacked seed');
      // The bipolicy run has two steps without an attacked harmful seed: no jailbreak rate there.
      assert.deepEqual((await series(p.page, 'asr')).map((s) => s.points).sort(), [10, 12]);
      assert.equal((await series(p.page, 'kl')).length, 4);
      assert.deepEqual((await series(p.page, 'diversity')).map((s) => s.points), [12, 12]);
      for (const chart of ['nash-gap', 'rewards', 'asr', 'over-refusal', 'kl', 'diversity', 'crossplay']) {
        assert.ok((await drawnPixels(p.page, chart)) > 1000, `${chart} is drawn`);
      }
      assert.equal(await p.page.getAttribute('figure[data-chart="crossplay"]', 'data-rows'), '5');
      assert.equal(await p.page.getAttribute('figure[data-chart="crossplay"]', 'data-columns'), '5');
      await choose(p.page, 'crossplay run', 'sandbox-bipolicy');
      await p.page.waitForSelector('figure[data-chart="crossplay"][data-columns="6"]');
      // The fixture's bipolicy run was killed once: its torn line is reported, not hidden.
      const warning = await p.page.textContent('.notice.warning');
      assert.match(warning ?? '', /1 problem skipped.*events\.jsonl:10: incomplete line: a record cut short/);
      await p.screenshot('dashboard');
    });

    it('overlays only the runs picked, and keeps the choice across a reload', async () => {
      const p = await panel('dashboard');
      await waitForSeries(p.page, 'asr', (s) => s.length === 2);
      await p.page.click(`vscode-checkbox[data-run="${SHARED_ID}"]`);
      const one = await waitForSeries(p.page, 'asr', (s) => s.length === 1);
      assert.match(one[0].label, /bipolicy/);
      await p.settle();
      const watches = p.host.received.filter((m) => m.type === 'watch-runs');
      assert.deepEqual(watches[watches.length - 1], { type: 'watch-runs', runs: [BIPOLICY_ID] });
      await p.reload();
      const again = await waitForSeries(p.page, 'asr', (s) => s.length === 1 && s[0].points === 10);
      assert.match(again[0].label, /bipolicy/);
      assert.equal(await p.page.$eval(`vscode-checkbox[data-run="${SHARED_ID}"]`, (b) => (b as HTMLElement & { checked: boolean }).checked), false);
    });

    it('updates live as the run grows', async () => {
      const live = copyRun(BIPOLICY_ID, tmp);
      const p = await panel('dashboard', { runsFolder: tmp });
      await waitForSeries(p.page, 'asr', (s) => s.length === 1 && s[0].points === 10);
      const w = RunWriter.open(live);
      w.setStatus('running');
      for (const step of [13, 14]) w.event({ type: 'step', round: 4, step, phase: 'both', metrics: { asr: 0.1, 'reward/attacker': -1, 'reward/defender': 2, self_bleu: 0.5, 'kl/attacker': 0.01, 'kl/defender': 0.01 } });
      await p.host.tick();
      await waitForSeries(p.page, 'asr', (s) => s[0].points === 12);
      assert.match((await p.page.textContent(`tr.run-row[data-run="${BIPOLICY_ID}"] [data-status]`)) ?? '', /running/);
      w.completeRound(4, { steps: [13, 14], roles: ['attacker', 'defender'], metrics: { nash_gap: 0.15 }, exchanges: 0, nashgap: { method: 'exact', nash_gap: 0.15, defender_exploitability: 0.1, attacker_gap: 0.05, best_response_asr: 0.2, budget: null } });
      await p.host.tick();
      await waitForSeries(p.page, 'nash-gap', (s) => s[0].points === 5);
      assert.ok(p.host.received.every((m) => m.type !== 'webview-error'));
    });

    it('lists the evaluations of the runs shown, and new ones as they are written', async () => {
      const live = copyRun(BIPOLICY_ID, tmp);
      const w = RunWriter.open(live);
      const metric = (hits: number, n: number) => ({ value: hits / n, ci95: [wilson(hits, n).low, wilson(hits, n).high] as [number, number], n });
      w.writeEval('harmbench-r3', { version: 1, name: 'harmbench-r3', created: '2026-11-24T10:00:00.000Z', data: '/data/harmbench.jsonl', adapters: { defender: 'rounds/round-0003/defender' }, metrics: { attack_success: metric(12, 200), over_refusal: metric(3, 100), unparsable: { value: 2, ci95: null, n: 300 } } });
      const p = await panel('dashboard', { runsFolder: tmp, focus: { runs: [BIPOLICY_ID] } });
      await p.page.waitForSelector('table.evals tbody tr[data-eval="harmbench-r3"]');
      const cell = (evalName: string, metric: string) => p.page.textContent(`tr[data-eval="${evalName}"] td[data-metric="${metric}"]`);
      // The recorded run already holds one evaluation (written by absp eval); the new one comes after it.
      assert.deepEqual(await p.page.$$eval('table.evals tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-eval'))), ['xstest-mini', 'harmbench-r3']);
      assert.deepEqual(await p.page.$$eval('tr[data-eval="harmbench-r3"] td', (tds) => tds.slice(1, 3).map((td) => td.textContent)), ['harmbench-r3', 'harmbench.jsonl']);
      assert.equal(await cell('harmbench-r3', 'attack_success'), '6.0% [3.5%, 10.2%] n=200');
      assert.equal(await cell('harmbench-r3', 'over_refusal'), '3.0% [1.0%, 8.5%] n=100');
      assert.equal(await cell('harmbench-r3', 'unparsable'), '2 of 300');
      assert.equal(await cell('harmbench-r3', 'refusal_harmful'), '—', 'a metric only the other evaluation has');
      const heads = await p.page.$$eval('table.evals thead th', (ths) => ths.map((th) => th.textContent));
      assert.deepEqual(heads.slice(0, 4), ['run', 'evaluation', 'data', 'attack success']);
      assert.deepEqual(heads.slice(4), ['refusal (harmful)', 'over-refusal (benign)', 'unparsable judge answers']);
      await p.screenshot('dashboard-evals');

      w.writeEval('xstest-r3', { version: 1, name: 'xstest-r3', created: '2026-11-24T11:00:00.000Z', data: '/data/xstest.jsonl', adapters: { defender: 'rounds/round-0003/defender' }, metrics: { over_refusal: metric(40, 250) } });
      await p.host.tick();
      await p.page.waitForSelector('table.evals tbody tr[data-eval="xstest-r3"]');
      assert.equal(await cell('xstest-r3', 'attack_success'), '—');
      assert.equal(await cell('xstest-r3', 'over_refusal'), '16.0% [12.0%, 21.1%] n=250');
    });

    it('keeps the overlay, the colours and distinct labels when the panel is hidden and shown again, and as runs are added', async () => {
      for (const id of [BIPOLICY_ID, SHARED_ID]) copyRun(id, tmp);
      // A second run of the same config: the same name, another start time.
      copyRunAs(BIPOLICY_ID, tmp, '2026-11-24T08-15-00-sandbox-bipolicy', '2026-11-24T08:15:00.000Z');
      const p = await panel('dashboard', { runsFolder: tmp, focus: { runs: [BIPOLICY_ID] } });
      await waitForSeries(p.page, 'asr', (s) => s.length === 1);
      // Opened on one run; the user checks the two others as well.
      for (const run of ['2026-11-24T08-15-00-sandbox-bipolicy', SHARED_ID]) await p.page.click(`vscode-checkbox[data-run="${run}"]`);
      const three = await waitForSeries(p.page, 'asr', (s) => s.length === 3);
      assert.equal(new Set(three.map((s) => s.label)).size, 3, `distinct labels: ${three.map((s) => s.label).join(' | ')}`);
      assert.ok(three.every((s) => / · \d+ \w{3} \d\d:\d\d$/.test(s.label)), 'name · start time');
      const colours = await swatches(p.page);
      assert.equal(new Set(Object.values(colours)).size, 3, 'three runs, three colours');

      await p.hideAndShow();
      await waitForSeries(p.page, 'asr', (s) => s.length === 3);
      assert.deepEqual((await checkedRuns(p.page)).sort(), [BIPOLICY_ID, SHARED_ID, '2026-11-24T08-15-00-sandbox-bipolicy'].sort(), 'the overlay survives the tab switch');
      assert.deepEqual(await swatches(p.page), colours);

      // New runs appear: nobody's colour changes.
      copyRunAs(SHARED_ID, tmp, '2026-11-25T10-00-00-sandbox-shared-lora', '2026-11-25T10:00:00.000Z');
      copyRunAs(SHARED_ID, tmp, '2026-11-25T11-00-00-sandbox-shared-lora', '2026-11-25T11:00:00.000Z');
      await p.host.pushRuns();
      await p.page.waitForFunction(() => document.querySelectorAll('tr.run-row').length === 5);
      const after = await swatches(p.page);
      for (const [run, colour] of Object.entries(colours)) assert.equal(after[run], colour, `${run} kept its colour`);
      await p.reload();
      await waitForSeries(p.page, 'asr', (s) => s.length === 3);
      assert.deepEqual(await swatches(p.page), after, 'and after a window reload');
      await p.screenshot('dashboard-three-runs');
    });

    it('shows a run clicked in the Runs view next to the others, as the cross-play default', async () => {
      const p = await panel('dashboard', { runsFolder: FIXTURE_DIR, focus: { runs: [BIPOLICY_ID] } });
      await waitForSeries(p.page, 'asr', (s) => s.length === 1);
      assert.equal(await p.page.getAttribute('tr.run-row.focused', 'data-run'), BIPOLICY_ID);
      assert.match((await p.page.textContent('vscode-single-select[data-name="crossplay run"]')) ?? '', /sandbox-bipolicy/);
      await p.host.setFocus({ runs: [SHARED_ID] });
      await waitForSeries(p.page, 'asr', (s) => s.length === 2);
      assert.equal(await p.page.getAttribute('tr.run-row.focused', 'data-run'), SHARED_ID);
      await p.page.waitForSelector('figure[data-chart="crossplay"][data-columns="5"]');
      assert.equal(await p.page.$eval('vscode-single-select[data-name="crossplay run"]', (s) => (s as HTMLElement & { value: string }).value), SHARED_ID);
    });

    it('has a runs table of before → after headline metrics, sortable, whose checked rows are the ones overlaid', async () => {
      const p = await panel('dashboard');
      await waitForSeries(p.page, 'nash-gap', (s) => s.length === 2);
      const cell = (run: string, metric: string) => p.page.textContent(`tr.run-row[data-run="${run}"] td[data-metric="${metric}"]`);
      assert.equal(await cell(BIPOLICY_ID, 'nash_gap'), '0.78 → 0.21');
      assert.equal(await cell(SHARED_ID, 'nash_gap'), '0.78 → 0.59');
      assert.equal(await cell(BIPOLICY_ID, 'asr/best_response'), '82.0% → 27.0%');
      assert.equal(await p.page.getAttribute(`tr.run-row[data-run="${BIPOLICY_ID}"] td[data-metric="nash_gap"]`, 'data-trend'), 'better');
      const order = () => p.page.$$eval('tr.run-row', (rows) => rows.map((r) => (r as HTMLElement).dataset.run));
      await p.page.click('th[data-sort="nash_gap"] button');
      assert.deepEqual(await order(), [BIPOLICY_ID, SHARED_ID], 'lowest Nash gap first');
      assert.equal(await p.page.getAttribute('th[data-sort="nash_gap"]', 'aria-sort'), 'ascending');
      await p.page.click('th[data-sort="nash_gap"] button');
      assert.deepEqual(await order(), [SHARED_ID, BIPOLICY_ID]);
      // A click on the row (not only its checkbox) takes it out of the charts.
      await p.page.click(`tr.run-row[data-run="${SHARED_ID}"] td.run-label`);
      const one = await waitForSeries(p.page, 'nash-gap', (s) => s.length === 1);
      assert.match(one[0].label, /bipolicy/);
      await p.reload();
      await p.page.waitForSelector('th[data-sort="nash_gap"][aria-sort="descending"]');
      await p.screenshot('dashboard-runs-table');
    });

    it('shows a sweep of seeds: a row per method with the median and 95% interval of each final metric, and its Nash gap as a median line with a band', async () => {
      const runsFolder = path.join(tmp, 'runs');
      copyRun(BIPOLICY_ID, runsFolder);
      const { dir } = makeRecordedSweep(runsFolder);
      const summary = SweepReader.open(dir).summary();
      const p = await panel('dashboard', { runsFolder });
      const row = (mode: string) => `tr.run-row[data-run="${sweepRowKey(dir, mode)}"]`;
      await p.page.waitForSelector(row('shared-lora'));
      // One row per method, the seeds behind it; the ordinary run keeps its own row.
      assert.deepEqual(await p.page.$$eval('tr.run-row', (rows) => rows.map((r) => (r as HTMLElement).dataset.kind)), ['sweep', 'sweep', 'run']);
      assert.match((await p.page.textContent(`${row('bipolicy')} td.run-label`)) ?? '', /^sandbox-sweep · 25 Nov \d\d:\d\d/);
      assert.equal(await p.page.textContent(`${row('bipolicy')} td.rounds`), '3 / 3 seeds');
      // Seeds shift the recorded run's metrics by −0.06, 0, +0.06: the median is the recorded value, the
      // interval (from the reader's bootstrap) lies within the spread of the seeds.
      const after = summary.modes.find((m) => m.mode === 'bipolicy')!.after.nash_gap;
      assert.equal(after.median, 0.21);
      assert.ok(after.low! >= 0.21 - SWEEP_SHIFT - 1e-9 && after.high! <= 0.21 + SWEEP_SHIFT + 1e-9 && after.low! < after.high!, JSON.stringify(after));
      const cell = (mode: string, metric: string) => p.page.textContent(`${row(mode)} td[data-metric="${metric}"]`);
      assert.equal(await cell('bipolicy', 'nash_gap'), `0.78 → 0.21 [${num(after.low)}, ${num(after.high)}]`);
      const sharedAsr = summary.modes.find((m) => m.mode === 'shared-lora')!.after['asr/best_response'];
      const asrText = (await cell('shared-lora', 'asr/best_response')) ?? '';
      assert.ok(asrText.endsWith(`→ ${(100 * sharedAsr.median!).toFixed(1)}% [${(100 * sharedAsr.low!).toFixed(1)}%, ${(100 * sharedAsr.high!).toFixed(1)}%]`), asrText);
      assert.match((await p.page.getAttribute(`${row('bipolicy')} td[data-metric="nash_gap"]`, 'title')) ?? '', /median over 3 seeds/);
      // A new panel overlays the newest sweep: per method, the median line with its band, a point per round.
      const recorded = RunReader.open(bipolicyDir).rounds().map((r) => [r.round, r.metrics.nash_gap]);
      type Banded = { label: string; points: number; band?: [number, number, number][] };
      const withBands = (await waitForSeries(p.page, 'nash-gap', (s) => s.filter((x) => (x as Banded).band).length === 2)) as Banded[];
      const bip = withBands.find((x) => /bipolicy, median of 3 seeds/.test(x.label))!;
      assert.ok(bip?.band, JSON.stringify(withBands));
      assert.deepEqual(bip.band!.map(([round]) => round), recorded.map(([round]) => round));
      for (const [i, [round, low, high]] of bip.band!.entries()) {
        const median = recorded[i][1] as number;
        assert.ok(low <= median + 1e-9 && median <= high + 1e-9 && high - low <= 2 * SWEEP_SHIFT + 1e-9, `round ${round}: ${low} ${median} ${high}`);
      }
      assert.ok(withBands.some((x) => /shared-lora, median of 3 seeds/.test(x.label)));
      // The band is drawn: the chart loses filled pixels when the sweep's rows are unchecked.
      const translucent = () =>
        p.page.$eval('figure[data-chart="nash-gap"] canvas', (c) => {
          const canvas = c as HTMLCanvasElement;
          const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
          let n = 0;
          for (let i = 3; i < data.length; i += 4) if (data[i] > 0 && data[i] < 128) n++;
          return n;
        });
      const withBand = await translucent();
      await p.screenshot('dashboard-sweep');
      await p.page.click(`${row('bipolicy')} td.run-label`);
      await p.page.click(`${row('shared-lora')} td.run-label`);
      await waitForSeries(p.page, 'nash-gap', (s) => s.every((x) => !(x as Banded).band));
      const without = await translucent();
      assert.ok(withBand > without + 2000, `band pixels: ${withBand} with the sweep, ${without} without`);
      // The choice of rows is the panel's state: a reload keeps one method checked.
      await p.page.click(`${row('shared-lora')} td.run-label`);
      await waitForSeries(p.page, 'nash-gap', (s) => s.filter((x) => (x as Banded).band).length === 1);
      await p.reload();
      const again = (await waitForSeries(p.page, 'nash-gap', (s) => s.some((x) => (x as Banded).band))) as Banded[];
      assert.deepEqual(again.filter((x) => x.band).map((x) => x.label.replace(/^.* · /, '')), ['shared-lora, median of 3 seeds']);
      assert.deepEqual((await checkedRuns(p.page)).filter((k) => k.includes('#')), [sweepRowKey(dir, 'shared-lora')]);
    });

    it('follows a sweep as its runs complete: the seeds counted, the medians and bands updated', async () => {
      const runsFolder = path.join(tmp, 'runs');
      fs.mkdirSync(runsFolder, { recursive: true });
      const { dir } = makeRecordedSweep(runsFolder, { started: [1] });
      const p = await panel('dashboard', { runsFolder });
      const row = `tr.run-row[data-run="${sweepRowKey(dir, 'bipolicy')}"]`;
      await p.page.waitForSelector(row);
      assert.equal(await p.page.textContent(`${row} td.rounds`), '1 / 3 seeds');
      await waitForSeries(p.page, 'nash-gap', (s) => s.some((x) => /bipolicy, median of 1 seed$/.test(x.label)));
      // The other seeds' runs arrive (the sweep goes on); the host's catalog sends the runs list again.
      fs.rmSync(dir, { recursive: true });
      makeRecordedSweep(runsFolder);
      await p.host.pushRuns();
      await p.page.waitForSelector(`${row} td.rounds:has-text("3 / 3 seeds")`);
      await waitForSeries(p.page, 'nash-gap', (s) => s.some((x) => /bipolicy, median of 3 seeds$/.test(x.label)));
    });

    it('marks round boundaries on per-step charts, names step and round in tooltips, and smooths on request', async () => {
      const p = await panel('dashboard', { runsFolder: FIXTURE_DIR, focus: { runs: [BIPOLICY_ID] } });
      await waitForSeries(p.page, 'rewards', (s) => s.length === 2);
      // The bipolicy run's rounds 2 and 3 begin at steps 5 and 9 (after attempt 1's void steps).
      for (const chart of ['rewards', 'asr', 'over-refusal', 'kl', 'diversity']) assert.equal(await p.page.getAttribute(`figure[data-chart="${chart}"]`, 'data-boundaries'), '5,9', chart);
      assert.equal(await p.page.getAttribute('figure[data-chart="nash-gap"]', 'data-boundaries'), '', 'per-round charts need none');
      await p.page.locator('figure[data-chart="diversity"] canvas').scrollIntoViewIfNeeded();
      const box = (await p.page.locator('figure[data-chart="diversity"] canvas').boundingBox())!;
      let title = '';
      for (let f = 0.15; f < 0.95 && !/^step \d+/.test(title); f += 0.1) {
        await p.page.mouse.move(box.x + box.width * f, box.y + box.height * 0.4);
        title = (await p.page.getAttribute('figure[data-chart="diversity"]', 'data-tooltip')) ?? '';
      }
      const m = /^step (\d+) · round (\d+)$/.exec(title);
      assert.ok(m, `tooltip title: ${title}`);
      const step = Number(m[1]);
      assert.equal(Number(m[2]), step <= 4 ? 1 : step <= 8 ? 2 : 3);
      const before = await drawnPixels(p.page, 'rewards');
      await choose(p.page, 'smoothing', 'Smoothing 0.8');
      await p.page.waitForSelector('figure[data-chart="rewards"][data-smoothing="0.8"]');
      assert.equal(await p.page.getAttribute('figure[data-chart="nash-gap"]', 'data-smoothing'), '0', 'rounds are not smoothed');
      assert.deepEqual((await series(p.page, 'rewards')).map((s) => s.points).sort(), [11, 12], 'the same points, drawn smoothed over the faint raw line');
      assert.ok(Math.abs((await drawnPixels(p.page, 'rewards')) - before) > 100, 'the chart was drawn again');
      await p.screenshot('dashboard-smoothed');
    });

    it('redraws axes, legends and the heatmap in the new theme’s colours when the theme changes, readable in each', async () => {
      const p = await panel('dashboard');
      await waitForSeries(p.page, 'asr', (s) => s.length === 2);
      await p.page.waitForSelector('figure[data-chart="crossplay"][data-rows="5"]');
      const darkText = (await p.page.getAttribute('figure[data-chart="nash-gap"]', 'data-foreground'))!;
      assert.ok((await pixelsNear(p.page, 'figure[data-chart="nash-gap"] canvas', darkText)) > 200, 'axis and legend text in the dark theme’s colour');
      const darkCells = JSON.parse((await p.page.getAttribute('figure[data-chart="crossplay"]', 'data-cells'))!) as { v: number; fill: string; text: string }[];
      for (const theme of ['light', 'high-contrast', 'high-contrast-light', 'dark'] as const) {
        await p.setTheme(theme);
        const kind = theme;
        await p.page.waitForFunction((k) => [...document.querySelectorAll('figure[data-chart]')].every((f) => (f as HTMLElement).dataset.theme === k), kind);
        const fg = (await p.page.getAttribute('figure[data-chart="nash-gap"]', 'data-foreground'))!;
        const bg = THEMES[theme].vars['--vscode-editor-background'];
        assert.ok(contrast(fg, bg) >= 4.5, `${theme}: text ${fg} on ${bg}`);
        assert.ok((await pixelsNear(p.page, 'figure[data-chart="nash-gap"] canvas', fg)) > 200, `${theme}: the text was drawn again in ${fg}`);
        const cells = JSON.parse((await p.page.getAttribute('figure[data-chart="crossplay"]', 'data-cells'))!) as { v: number; fill: string; text: string }[];
        for (const c of cells) assert.ok(contrast(c.text, c.fill) >= 4.5, `${theme}: ${c.text} on ${c.fill}`);
        if (theme === 'light' || theme === 'high-contrast-light') assert.notDeepEqual(cells.map((c) => c.fill), darkCells.map((c) => c.fill), `${theme}: the heatmap changed colours`);
        assert.equal(await p.page.getAttribute('figure[data-chart="crossplay"] .colour-bar', 'data-domain'), '0,1');
        const swatch = await p.page.$eval('tr.run-row .swatch', (e) => getComputedStyle(e).backgroundColor);
        assert.ok(contrast(swatch, bg) >= 3.5, `${theme}: the run colour ${swatch} on ${bg}`);
        await p.screenshot(`dashboard-theme-${theme}`);
      }
    });

    it('shows a newer-format run and a corrupt one as errors, and survives a malformed message', async () => {
      const newer = copyRun(BIPOLICY_ID, tmp);
      const runJson = path.join(newer, 'run.json');
      fs.writeFileSync(runJson, JSON.stringify({ ...JSON.parse(fs.readFileSync(runJson, 'utf8')), version: 2 }));
      const corrupt = path.join(tmp, 'half-written');
      fs.mkdirSync(corrupt);
      fs.writeFileSync(path.join(corrupt, 'run.json'), '{"format": "absp-run", "version": 1, "id": "x", "na');
      const p = await panel('dashboard', { runsFolder: FIXTURE_DIR, extraRuns: { 'from-the-future': newer, 'half-written': corrupt } });
      await waitForSeries(p.page, 'asr', (s) => s.length === 2);
      const future = (await p.page.textContent('tr.run-row[data-run="from-the-future"]')) ?? '';
      assert.match(future, /newer-format/);
      assert.match(future, /format version 2, newer than the version 1/);
      assert.match((await p.page.textContent('tr.run-row[data-run="half-written"]')) ?? '', /corrupt.*not valid JSON/);
      assert.equal(await p.page.$eval('vscode-checkbox[data-run="from-the-future"]', (b) => b.hasAttribute('disabled')), true);

      await p.post({ type: 'run-data', data: { run: BIPOLICY_ID, info: { format: 'absp-run' } } });
      await p.post({ type: 'no-such-message' });
      await p.post('a string, not a message');
      await p.page.waitForFunction(() => document.querySelectorAll('.notice.error').length === 3);
      const errors = await p.page.$$eval('.notice.error', (els) => els.map((e) => e.textContent ?? ''));
      assert.match(errors[0], /malformed a message|malformed/);
      assert.match(errors[0], /"run-data"/);
      assert.match(errors[1], /"no-such-message"/);
      await p.settle();
      assert.equal(p.host.received.filter((m) => m.type === 'webview-error').length, 3, 'the host hears about each one');
      assert.deepEqual((await series(p.page, 'asr')).map((s) => s.points).sort(), [10, 12], 'the charts are still there');
      await p.screenshot('dashboard-errors');
    });
  });

  describe('dialogue stepper', () => {
    const reader = RunReader.open(bipolicyDir);
    const all = [1, 2, 3].flatMap((r) => reader.transcript(r));

    async function stepperOn(run: string, options?: Partial<FakeHostOptions>): Promise<PanelPage> {
      const p = await panel('stepper', { runsFolder: FIXTURE_DIR, focus: { runs: [run] }, ...options });
      await p.page.waitForSelector('article.exchange');
      return p;
    }

    it('in a narrow panel, puts the exchange list above the exchange without covering it when scrolled', async () => {
      // Half an editor wide, as when an exchange is opened beside the stepper (seen in code-server).
      const p = await openPanel(browser, server, 'stepper', new FakeHost({ runsFolder: FIXTURE_DIR, focus: { runs: [BIPOLICY_ID] } }), { width: 620, height: 800 });
      open.push(p);
      await p.page.waitForSelector('article.exchange');
      const overlap = async () =>
        p.page.evaluate(() => {
          const a = document.querySelector('.exchange-list')!.getBoundingClientRect();
          const b = document.querySelector('article.exchange')!.getBoundingClientRect();
          return Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));
        });
      assert.equal(await overlap(), 0, 'before scrolling');
      await p.page.mouse.wheel(0, 600);
      await p.page.waitForFunction(() => window.scrollY > 300 || document.scrollingElement!.scrollTop > 300);
      assert.equal(await overlap(), 0, 'after scrolling: the list stays where it is');
      await p.screenshot('stepper-narrow');
    });

    it('steps through exchanges with j/k and the arrow keys, showing every part of the exchange', async () => {
      const p = await stepperOn(BIPOLICY_ID);
      assert.deepEqual(await position(p.page), { at: 1, of: 36, id: all[0].id });
      for (const key of ['j', 'ArrowDown', 'ArrowRight']) await p.page.keyboard.press(key);
      assert.deepEqual(await position(p.page), { at: 4, of: 36, id: all[3].id });
      await p.page.keyboard.press('k');
      await p.page.keyboard.press('ArrowUp');
      assert.equal((await position(p.page)).id, all[1].id);
      await p.page.keyboard.press('ArrowLeft');
      await p.page.keyboard.press('k'); // already at the first: stays
      assert.equal((await position(p.page)).at, 1);

      const attacked = all.findIndex((x) => x.attacked && x.turns[0].attacker?.thought);
      for (let i = 0; i < attacked; i++) await p.page.keyboard.press('j');
      const x = all[attacked];
      const text = async (part: string) => (await p.page.textContent(`[data-part="${part}"]`)) ?? '';
      assert.ok((await text('seed')).includes(x.seed.prompt));
      assert.ok((await text('attacker-thought')).includes(x.turns[0].attacker!.thought!));
      assert.ok((await text('attacker-text')).includes(x.turns[0].attacker!.text));
      assert.ok((await text('defender-thought')).includes(x.turns[0].defender.thought!));
      assert.ok((await text('defender-text')).includes(x.turns[0].defender.text));
      assert.match(await text('judge'), /prompt harmful: (yes|no).*refusal: (yes|no).*response harmful: (yes|no)/);
      assert.match(await text('rewards'), /defender [+-]\d/);
      assert.equal(await p.page.getAttribute('article.exchange', 'data-outcome'), outcomeOf(x));

      await p.screenshot('stepper');

      // In the search box, j and k are letters, not steps; Escape leaves the box and the keys step again.
      await p.page.keyboard.press('/');
      await p.page.keyboard.type('jk');
      assert.equal(await p.page.$eval('vscode-textfield[data-name="search"]', (f) => (f as HTMLElement & { value: string }).value), 'jk');
      assert.match((await p.page.textContent('.empty-state')) ?? '', /No exchanges matching “jk”/);
      await p.page.keyboard.press('Backspace');
      await p.page.keyboard.press('Backspace');
      await p.page.keyboard.press('Escape');
      assert.equal((await position(p.page)).id, x.id, 'clearing the search comes back to the same exchange');
      await p.page.keyboard.press('j');
      assert.equal((await position(p.page)).id, all[attacked + 1].id);
    });

    it('filters by outcome, searches, and jumps to a round', async () => {
      const p = await stepperOn(BIPOLICY_ID);
      const successes = all.filter((x) => outcomeOf(x) === 'jailbreak');
      await choose(p.page, 'outcome', 'Jailbreaks');
      await p.page.waitForFunction((n) => document.getElementById('position')?.textContent === `1 / ${n}`, successes.length);
      for (let i = 0; i < successes.length; i++) {
        assert.equal(await p.page.getAttribute('article.exchange', 'data-outcome'), 'jailbreak');
        assert.equal((await position(p.page)).id, successes[i].id);
        await p.page.keyboard.press('j');
      }
      await choose(p.page, 'outcome', 'Over-refusals');
      await p.page.waitForSelector('article.exchange[data-outcome="over-refusal"]');
      await choose(p.page, 'outcome', 'Unparsable');
      await p.page.waitForSelector('article.exchange[data-outcome="unparsable"]');
      assert.equal((await position(p.page)).of, all.filter((x) => outcomeOf(x) === 'unparsable').length);

      await choose(p.page, 'outcome', 'All exchanges');
      await p.page.click('vscode-textfield[data-name="search"]');
      await p.page.keyboard.type('DevMode');
      const matching = all.filter((x) => JSON.stringify(x.turns).toLowerCase().includes('devmode'));
      assert.ok(matching.length > 0);
      // The cursor stays on the exchange it was on, or the next match after it.
      await p.page.waitForFunction((n) => document.getElementById('position')?.textContent?.endsWith(` / ${n}`), matching.length);
      assert.match((await p.page.$$eval('article mark', (m) => m.map((e) => e.textContent))).join(','), /DevMode/);

      await p.page.keyboard.press('Control+A');
      await p.page.keyboard.press('Backspace');
      await p.page.keyboard.type('zebra-nowhere');
      await p.page.waitForSelector('.empty-state');
      assert.match((await p.page.textContent('.empty-state')) ?? '', /No exchanges matching “zebra-nowhere”/);
      await p.page.keyboard.press('Control+A');
      await p.page.keyboard.press('Backspace');

      await choose(p.page, 'round', 'Round 2');
      await p.page.waitForFunction(() => document.getElementById('position')?.textContent === '1 / 12');
      for (let i = 0; i < 12; i++) {
        assert.match((await p.page.textContent('article.exchange header')) ?? '', /round 2/);
        await p.page.keyboard.press('j');
      }
      assert.ok(all.filter((x) => x.round === 2).every((x) => x.attempt === 2), 'only the valid attempt is shown');
    });

    it('names a harmless answer to an unfaithful rewrite an off-topic compliance, not a jailbreak, and explains the colours', async () => {
      const p = await stepperOn(BIPOLICY_ID);
      const offTopic = all.filter((x) => outcomeOf(x) === 'off-topic');
      assert.ok(offTopic.length >= 2);
      assert.match((await p.page.textContent('vscode-single-select[data-name="outcome"]')) ?? '', new RegExp(`Off-topic compliances \\(${offTopic.length}\\)`));
      await choose(p.page, 'outcome', 'Off-topic compliances');
      await p.page.waitForSelector('article.exchange[data-outcome="off-topic"]');
      const x = offTopic[0];
      assert.equal((await position(p.page)).id, x.id);
      assert.equal(x.seed.harmful, true);
      assert.equal(await p.page.textContent('article.exchange header [data-outcome]'), 'off-topic compliance');
      const tone = (label: string) => p.page.getAttribute(`[data-part="judge"] [data-label="${label}"]`, 'data-tone');
      assert.equal(await tone('response harmful'), 'good', 'the answer was harmless');
      assert.equal(await tone('faithful'), 'neutral', 'the rewrite changed the seed’s class');
      assert.equal(await tone('prompt harmful'), 'quiet', 'a fact about the prompt, neither good nor bad');
      assert.ok((x.rewards.attacker ?? 0) < 0, 'the attacker was not rewarded for it');
      // The list beside it says the same.
      assert.equal(await p.page.getAttribute(`tr[data-exchange="${x.id}"]`, 'data-outcome'), 'off-topic');
      await p.page.click('[data-part="legend"] summary');
      const legend = (await p.page.textContent('[data-part="legend"]')) ?? '';
      for (const word of ['jailbreak', 'off-topic compliance', 'harmless compliance', 'refused', 'over-refusal', 'answered', 'unparsable']) assert.ok(legend.includes(word), word);
      assert.match(legend, /red.*harmful answer.*amber.*needless refusal.*green.*did right/s);
      await p.screenshot('stepper-off-topic');
    });

    it('counts each filter with the search applied', async () => {
      const p = await stepperOn(BIPOLICY_ID);
      const counts = async () => JSON.parse((await p.page.getAttribute('vscode-single-select[data-name="outcome"]', 'data-counts'))!) as Record<string, number>;
      assert.equal((await counts()).all, 36);
      await p.page.click('vscode-textfield[data-name="search"]');
      await p.page.keyboard.type('chess');
      await p.page.waitForFunction(() => JSON.parse(document.querySelector('vscode-single-select[data-name="outcome"]')!.getAttribute('data-counts')!).all === 3);
      const c = await counts();
      assert.equal(c['off-topic'], 3);
      assert.equal(c.jailbreak, 0);
      assert.match((await p.page.textContent('vscode-single-select[data-name="outcome"]')) ?? '', /All exchanges \(3\)/);
    });

    it('steps with the keys whatever has the focus but a text field: after using a filter, j/k and the arrows still step; Home and End', async () => {
      const p = await stepperOn(BIPOLICY_ID);
      // Choose a filter with the keyboard, as in VS Code: the select keeps the focus afterwards.
      await p.page.focus('vscode-single-select[data-name="outcome"]');
      await p.page.keyboard.press('Space');
      await p.page.waitForSelector('vscode-single-select[data-name="outcome"][open]');
      await p.page.keyboard.press('ArrowDown');
      await p.page.keyboard.press('ArrowUp');
      await p.page.keyboard.press('Enter');
      assert.equal(await p.page.evaluate(() => document.activeElement?.tagName), 'VSCODE-SINGLE-SELECT');
      assert.equal(await p.page.$eval('vscode-single-select[data-name="outcome"]', (s) => (s as HTMLElement & { value: string }).value), 'all');
      await p.page.keyboard.press('j');
      assert.equal((await position(p.page)).at, 2);
      await p.page.keyboard.press('ArrowDown');
      assert.equal((await position(p.page)).at, 3, 'the arrow stepped');
      assert.equal(await p.page.$eval('vscode-single-select[data-name="outcome"]', (s) => (s as HTMLElement & { value: string }).value), 'all', 'and did not change the filter');
      await p.page.keyboard.press('k');
      assert.equal((await position(p.page)).at, 2);
      await p.page.keyboard.press('End');
      assert.deepEqual(await position(p.page), { at: 36, of: 36, id: all[35].id });
      await p.page.keyboard.press('Home');
      assert.deepEqual(await position(p.page), { at: 1, of: 36, id: all[0].id });
      // The list follows, and a click in it jumps.
      assert.equal(await p.page.getAttribute('.exchange-list tr.selected', 'data-exchange'), all[0].id);
      await p.page.click(`.exchange-list tr[data-exchange="${all[7].id}"]`);
      assert.equal((await position(p.page)).id, all[7].id);
      await p.page.keyboard.press('j');
      assert.equal((await position(p.page)).id, all[8].id, 'keys still step after a click in the list');
      assert.equal(await p.page.$$eval('.exchange-list tbody tr', (rows) => rows.length), 36);
      const rewards = await p.page.$$eval(`.exchange-list tr[data-exchange="${all[0].id}"] td`, (tds) => tds.map((td) => td.textContent));
      assert.deepEqual(rewards.slice(2), [signed(all[0].rewards.attacker), signed(all[0].rewards.defender)]);
    });

    it('shows the samples of a GRPO group together: banded in the list, side by side under the exchange', async () => {
      const w = RunWriter.create(tmp, { id: 'grpo-run', name: 'grpo', mode: 'bipolicy', engine: 'ort', base_model: 'builtin:sandbox', rounds_planned: 1, roles: ['attacker', 'defender'], config: { rl: { estimator: 'grpo', group_size: 3 } } });
      const base = all[0];
      const answers = [
        { refusal: true, harmful: false, rewards: { attacker: -1, defender: 3 } },
        { refusal: false, harmful: true, rewards: { attacker: 3, defender: -1 } },
        { refusal: true, harmful: false, rewards: { attacker: -1, defender: 3 } },
      ];
      for (const group of [0, 1]) {
        answers.forEach((a, k) => {
          w.exchange({
            ...base,
            id: `r0001-s000001-${String(group * 3 + k).padStart(3, '0')}`,
            round: 1,
            step: 1,
            group,
            attempt: undefined,
            judge: { prompt_harmful: true, refusal: a.refusal, response_harmful: a.harmful, faithful: true, unparsable: false },
            rewards: { ...a.rewards, components: {} },
          });
        });
      }
      const p = await panel('stepper', { runsFolder: tmp, focus: { runs: ['grpo-run'] } });
      await p.page.waitForSelector('[data-part="group"]');
      assert.equal(await p.page.getAttribute('[data-part="group"]', 'data-size'), '3');
      assert.match((await p.page.textContent('[data-part="group"] h3')) ?? '', /GRPO group: 3 samples of this seed in step 1/);
      assert.deepEqual(await p.page.$$eval('[data-part="group"] tbody tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.exchange)), ['r0001-s000001-000', 'r0001-s000001-001', 'r0001-s000001-002']);
      // Advantages: each reward minus the group's mean (attacker mean 1/3).
      assert.deepEqual(await p.page.$$eval('[data-part="group"] tbody tr:nth-child(2) td', (tds) => tds.slice(2).map((td) => td.textContent)), ['+3.00', '+2.67', '-1.00', '-2.67']);
      assert.deepEqual(await p.page.$$eval('.exchange-list tbody tr.group-start', (rows) => rows.map((r) => (r as HTMLElement).dataset.exchange)), ['r0001-s000001-000', 'r0001-s000001-003']);
      await p.page.click('[data-part="group"] tr[data-exchange="r0001-s000001-002"]');
      assert.equal((await position(p.page)).id, 'r0001-s000001-002');
      await p.screenshot('stepper-grpo-group');
    });

    it('shows an exchange’s annotations and asks the host to annotate it in the editor', async () => {
      const p = await stepperOn(BIPOLICY_ID);
      const annotated = reader.annotations().find((a) => a.label === 'jailbreak')!;
      await choose(p.page, 'outcome', 'Annotated');
      await p.page.waitForFunction(() => document.getElementById('position')?.textContent === '1 / 3');
      assert.equal((await position(p.page)).id, annotated.exchange);
      const notes = (await p.page.textContent('[data-part="annotations"]')) ?? '';
      assert.ok(notes.includes(annotated.note), notes);
      assert.match(notes, /jailbreak/);
      await p.page.click('vscode-button[data-name="annotate"]');
      await p.settle();
      assert.deepEqual(p.host.received.find((m) => m.type === 'annotate'), { type: 'annotate', run: BIPOLICY_ID, round: annotated.round, exchange: annotated.exchange });
    });

    it('replays an exchange with another round’s adapters: loading, then the result; or the error', async () => {
      let fail = false;
      const p = await stepperOn(BIPOLICY_ID, {
        replayDelayMs: 600,
        replay: async (req, host) => {
          if (fail) throw new Error('engine crashed: onnxruntime could not load model.onnx');
          const x = host.reader(req.run).transcript(req.round).find((e) => e.id === req.exchange)!;
          return { exchange: x.id, adapterRound: req.adapterRound, adapters: { defender: 'rounds/round-0002/defender' }, defender: { thought: null, text: 'I will not help with that.', raw: 'I will not help with that.' }, judge: { prompt_harmful: true, refusal: true, response_harmful: false, unparsable: false } };
        },
      });
      await choose(p.page, 'outcome', 'Jailbreaks');
      await choose(p.page, 'replay round', 'defender of round 2');
      await p.page.click('vscode-button[data-name="replay"]');
      await p.page.waitForSelector('[data-replay="loading"]');
      assert.match((await p.page.textContent('[data-replay="loading"]')) ?? '', /against the defender of round 2/);
      await p.screenshot('stepper-replay-loading');
      await p.page.waitForSelector('[data-replay="done"]');
      assert.match((await p.page.textContent('[data-answer="replayed"]')) ?? '', /Replayed answer — defender of round 2\s*I will not help with that\./);
      await p.settle();
      const sent = p.host.received.find((m) => m.type === 'replay');
      assert.ok(sent && sent.type === 'replay' && sent.adapterRound === 2 && sent.round === 1);

      fail = true;
      await p.page.keyboard.press('j');
      await p.page.click('vscode-button[data-name="replay"]');
      await p.page.waitForSelector('[data-replay="error"]');
      assert.match((await p.page.textContent('[data-replay="error"]')) ?? '', /Replay failed: engine crashed: onnxruntime could not load model\.onnx/);
      await p.screenshot('stepper-replay-error');
      await p.page.keyboard.press('k');
      await p.page.waitForSelector('[data-replay="done"]'); // each exchange keeps its own replay
    });

    it('puts each answer beside its own labels and names the adapters exactly: played by round 1’s defender, replayed by round 3’s', async () => {
      const p = await stepperOn(BIPOLICY_ID, {
        replay: async (req, host) => {
          const x = host.reader(req.run).transcript(req.round).find((e) => e.id === req.exchange)!;
          return { exchange: x.id, adapterRound: req.adapterRound, adapters: { attacker: x.adapters.attacker, defender: `rounds/round-000${req.adapterRound}/defender` }, defender: { thought: null, text: 'No.', raw: 'No.' }, judge: { prompt_harmful: true, refusal: true, response_harmful: false, unparsable: false } };
        },
      });
      await choose(p.page, 'round', 'Round 2');
      await choose(p.page, 'outcome', 'Jailbreaks');
      await p.page.waitForSelector('article.exchange[data-outcome="jailbreak"]');
      const id = (await position(p.page)).id!;
      assert.match((await p.page.textContent('[data-part="played-by"]')) ?? '', /defender: defender of round 1/);
      // The latest complete round's defender is the default.
      assert.equal(await p.page.$eval('vscode-single-select[data-name="replay round"]', (s) => (s as HTMLElement & { value: string }).value), '3');
      await p.page.click('vscode-button[data-name="replay"]');
      await p.page.waitForSelector('[data-replay="done"]');
      assert.equal(await p.page.textContent('[data-part="replay-who"]'), 'played: defender of round 1 · replay: defender of round 3');
      assert.equal(await p.page.getAttribute('[data-answer="recorded"]', 'data-outcome'), 'jailbreak');
      assert.equal(await p.page.getAttribute('[data-answer="replayed"]', 'data-outcome'), 'refused');
      assert.match((await p.page.textContent('[data-answer="recorded"]')) ?? '', /response harmful:\s*yes/);
      assert.match((await p.page.textContent('[data-answer="replayed"]')) ?? '', /refusal:\s*yes.*response harmful:\s*no/s);
      const x = all.find((e) => e.id === id)!;
      assert.ok(((await p.page.textContent('[data-answer="recorded"]')) ?? '').includes(x.turns[0].defender.text));
      await p.screenshot('stepper-replay-side-by-side');
    });

    it('replays N samples and gives how often the defender complies and harms, with 95% intervals', async () => {
      const p = await stepperOn(BIPOLICY_ID);
      await choose(p.page, 'outcome', 'Jailbreaks');
      await p.page.waitForSelector('article.exchange[data-outcome="jailbreak"]');
      await choose(p.page, 'replay samples', '16 samples');
      await p.page.click('vscode-button[data-name="replay"]');
      await p.page.waitForSelector('[data-part="replay-rates"]');
      await p.settle();
      const sent = p.host.received.filter((m) => m.type === 'replay');
      assert.equal(sent.length === 1 && sent[0].type === 'replay' && sent[0].samples, 16);
      // The stand-in complies on every fourth sample (4 of 16), harmfully on every eighth (2 of 16).
      const rate = (hits: number, n: number) => {
        const ci = wilson(hits, n);
        return `${hits} of ${n}, ${Math.round((100 * hits) / n)}% [${(100 * ci.low).toFixed(0)}%, ${(100 * ci.high).toFixed(0)}%]`;
      };
      assert.equal(await p.page.textContent('[data-rate="compliance"]'), rate(4, 16));
      assert.equal(await p.page.textContent('[data-rate="harm"]'), rate(2, 16));
      assert.equal(await p.page.getAttribute('[data-part="replay-rates"]', 'data-samples'), '16');
      await p.page.click('[data-part="replay-rates"] summary');
      assert.equal(await p.page.$$eval('.sample-list li', (li) => li.length), 16);
      assert.equal(await p.page.$$eval('.sample-list [data-outcome="jailbreak"]', (b) => b.length), 2);
      await p.page.locator('[data-part="replay-rates"]').scrollIntoViewIfNeeded();
      await p.screenshot('stepper-replay-samples');
      await p.reload();
      await p.page.waitForSelector('article.exchange');
      assert.equal(await p.page.$eval('vscode-single-select[data-name="replay samples"]', (s) => (s as HTMLElement & { value: string }).value), '16', 'the choice is kept');
    });

    it('comes back to the same exchange, filter and search after a reload', async () => {
      const p = await stepperOn(BIPOLICY_ID);
      await choose(p.page, 'outcome', 'Over-refusals');
      await p.page.waitForSelector('article.exchange[data-outcome="over-refusal"]');
      await p.page.keyboard.press('j');
      const before = await position(p.page);
      await p.reload();
      await p.page.waitForSelector('article.exchange');
      assert.deepEqual(await position(p.page), before);
    });

    it('says why a run cannot be shown instead of going blank', async () => {
      const broken = copyRun(BIPOLICY_ID, tmp);
      fs.writeFileSync(path.join(broken, 'run.json'), '{"format":"absp-run","version":1,"id":');
      const p = await panel('stepper', { runsFolder: tmp, focus: { runs: [BIPOLICY_ID] } });
      await p.page.waitForSelector('.empty-state.error');
      assert.match((await p.page.textContent('.empty-state.error')) ?? '', /cannot be shown.*run\.json is corrupt: not valid JSON/);
    });
  });

  describe('adapter diff', () => {
    it('compares attacker and defender per module, with the numbers of the real math', async () => {
      const p = await panel('adapter-diff', { runsFolder: FIXTURE_DIR, focus: { runs: [BIPOLICY_ID] } });
      await p.page.waitForSelector('table.modules tbody tr');
      // Default: how separate the roles are, the last round's attacker against its defender.
      assert.match((await p.page.textContent('.summary')) ?? '', /attacker · round 3 against defender · round 3: 6 modules/);
      const rows = await p.page.$$eval('table.modules tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
      assert.equal(rows.length, 6);
      const expected = diffAdapters(loadLoraAdapter(path.join(bipolicyDir, 'rounds/round-0003/attacker')), loadLoraAdapter(path.join(bipolicyDir, 'rounds/round-0003/defender')));
      rows.forEach((cells, i) => {
        const m = expected.modules[i];
        assert.equal(cells[0], `L${m.layer} ${m.module}`);
        assert.equal(Number(cells[2]), Number(m.normLeft.toPrecision(3)));
        assert.equal(Number(cells[6]), Number(m.cosine!.toPrecision(3)));
      });
      assert.deepEqual((await series(p.page, 'norms')).map((s) => s.points), [6, 6, 6]);
      assert.deepEqual((await series(p.page, 'sigma')).map((s) => s.points), [4, 4]);
      assert.ok((await drawnPixels(p.page, 'similarity')) > 1000);
      await p.page.click('table.modules tbody tr:nth-child(5)');
      await p.page.waitForSelector(`.module-heading:has-text("${expected.modules[4].key}")`);
      await p.screenshot('adapter-diff');
      await p.settle();
      assert.equal(p.host.received.filter((m) => m.type === 'adapter-diff').length, 1);

      // After a reload the comparison and the selected module come back without computing again.
      await p.reload();
      await p.page.waitForSelector(`.module-heading:has-text("${expected.modules[4].key}")`);
      assert.equal(await p.page.$$eval('table.modules tbody tr', (trs) => trs.length), 6);
      assert.ok(!p.host.received.some((m) => m.type === 'adapter-diff'));
    });

    it('opened on a round, shows what that round changed, and that round’s two roles', async () => {
      const p = await panel('adapter-diff', { runsFolder: FIXTURE_DIR, focus: { runs: [BIPOLICY_ID], round: 2 } });
      await p.page.waitForSelector('.summary:has-text("attacker · round 1 against attacker · round 2")');
      await choose(p.page, 'kind', 'Attacker vs defender');
      await p.page.click('vscode-button[data-name="compare"]');
      await p.page.waitForSelector('.summary:has-text("attacker · round 2 against defender · round 2")');
      const sent = p.host.received.filter((m) => m.type === 'adapter-diff');
      assert.deepEqual(sent.map((m) => m.type === 'adapter-diff' && [m.left.round, m.right.round]), [[1, 2], [2, 2]]);
    });

    it('draws layers × modules as a heatmap with its scale; a click on a cell selects that module', async () => {
      const p = await panel('adapter-diff', { runsFolder: FIXTURE_DIR, focus: { runs: [BIPOLICY_ID] } });
      await p.page.waitForSelector('figure[data-chart="layers-modules"][data-rows="2"][data-columns="3"]');
      assert.equal(await p.page.getAttribute('figure[data-chart="layers-modules"]', 'data-metric'), 'cosine');
      assert.equal(await p.page.getAttribute('figure[data-chart="layers-modules"] .colour-bar', 'data-domain'), '-1,1', 'a signed scale for the cosine');
      const cells = JSON.parse((await p.page.getAttribute('figure[data-chart="layers-modules"]', 'data-cells'))!) as { x: string; y: string; v: number; fill: string; text: string }[];
      assert.deepEqual(cells.map((c) => `${c.y} ${c.x}`), ['L0 q_proj', 'L0 v_proj', 'L0 down_proj', 'L1 q_proj', 'L1 v_proj', 'L1 down_proj']);
      for (const c of cells) assert.ok(contrast(c.text, c.fill) >= 4.5);
      // Click the cell of layer 1, v_proj (second row, second column).
      await p.page.locator('figure[data-chart="layers-modules"] canvas').scrollIntoViewIfNeeded();
      const area = JSON.parse((await p.page.getAttribute('figure[data-chart="layers-modules"]', 'data-area'))!) as { left: number; top: number; right: number; bottom: number };
      const box = (await p.page.locator('figure[data-chart="layers-modules"] canvas').boundingBox())!;
      await p.page.mouse.click(box.x + area.left + ((area.right - area.left) * 1.5) / 3, box.y + area.top + ((area.bottom - area.top) * 1.5) / 2);
      await p.page.waitForSelector('.module-heading:has-text("model.layers.1.self_attn.v_proj")');
      await choose(p.page, 'heatmap metric', 'column-space overlap');
      await p.page.waitForSelector('figure[data-chart="layers-modules"][data-metric="columnOverlap"]');
      assert.equal(await p.page.getAttribute('figure[data-chart="layers-modules"] .colour-bar', 'data-domain'), '0,1');
      await p.screenshot('adapter-diff-heatmap');
    });

    it('marks a result that no longer matches the choice, and drops it when the run changes', async () => {
      const p = await panel('adapter-diff', { runsFolder: FIXTURE_DIR, focus: { runs: [BIPOLICY_ID] } });
      await p.page.waitForSelector('.summary:has-text("attacker · round 3 against defender · round 3")');
      assert.equal(await p.page.$('.stale'), null);
      await choose(p.page, 'kind', 'Two rounds of one adapter');
      await p.page.waitForSelector('.notice.stale');
      assert.match((await p.page.textContent('.notice.stale')) ?? '', /compares attacker · round 3 with defender · round 3; press Compare/);
      await p.page.click('vscode-button[data-name="compare"]');
      await p.page.waitForSelector('.summary:has-text("attacker · round 1 against attacker · round 3")');
      assert.equal(await p.page.$('.stale'), null);
      await choose(p.page, 'run', 'sandbox-shared-lora');
      await p.page.waitForSelector('.empty-state:has-text("Press Compare")');
      assert.equal(await p.page.$('table.modules'), null, 'the other run’s numbers are gone');
      await p.reload();
      await p.page.waitForSelector('.empty-state:has-text("Comparing"), table.modules tbody tr');
    });

    it('explains a zero initial update, offers no attacker-vs-defender for a shared adapter, and shows a failure', async () => {
      const broken = copyRun(SHARED_ID, tmp);
      fs.writeFileSync(path.join(broken, 'rounds/round-0003/shared/adapter_model.safetensors'), 'not safetensors');
      const p = await panel('adapter-diff', { runsFolder: tmp, focus: { runs: [SHARED_ID] } });
      await p.page.waitForSelector('.empty-state.error');
      assert.match((await p.page.textContent('.empty-state.error')) ?? '', /The comparison failed: .*round-0003\/shared\/adapter_model\.safetensors: declares a \d+-byte header/);
      await p.page.click('vscode-single-select[data-name="kind"]');
      const roles = p.page.locator('vscode-single-select[data-name="kind"] li[role=option]:has-text("Attacker vs defender")');
      assert.match((await roles.textContent()) ?? '', /one shared adapter/);
      await p.page.keyboard.press('Escape');
      await choose(p.page, 'round-a', 'round 0 (initial)');
      await choose(p.page, 'round-b', 'round 2');
      await p.page.click('vscode-button[data-name="compare"]');
      await p.page.waitForSelector('table.modules tbody tr');
      assert.match((await p.page.textContent('.summary')) ?? '', /zero update on one side.*B = 0/);
    });
  });
});
