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
import { wilson } from '../../extension/util/stats';
import { BIPOLICY_ID, FIXTURE_DIR, SHARED_ID } from '../fixtures/make-recorded-run';
import { launchBrowser, openPanel, type PanelPage } from './harness/browser';
import { buildPanels } from './harness/build';
import { FakeHost, type FakeHostOptions } from './harness/fake-host';
import { startPanelServer, type PanelServer } from './harness/server';

const bipolicyDir = path.join(FIXTURE_DIR, BIPOLICY_ID);

async function choose(page: Page, select: string, optionText: string): Promise<void> {
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
      assert.deepEqual((await series(p.page, 'asr')).map((s) => s.points), [12, 12]);
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
      const again = await waitForSeries(p.page, 'asr', (s) => s.length === 1 && s[0].points === 12);
      assert.match(again[0].label, /bipolicy/);
      assert.equal(await p.page.$eval(`vscode-checkbox[data-run="${SHARED_ID}"]`, (b) => (b as HTMLElement & { checked: boolean }).checked), false);
    });

    it('updates live as the run grows', async () => {
      const live = copyRun(BIPOLICY_ID, tmp);
      const p = await panel('dashboard', { runsFolder: tmp });
      await waitForSeries(p.page, 'asr', (s) => s.length === 1 && s[0].points === 12);
      const w = RunWriter.open(live);
      w.setStatus('running');
      for (const step of [13, 14]) w.event({ type: 'step', round: 4, step, phase: 'both', metrics: { asr: 0.1, 'reward/attacker': -1, 'reward/defender': 2, self_bleu: 0.5, 'kl/attacker': 0.01, 'kl/defender': 0.01 } });
      await p.host.tick();
      await waitForSeries(p.page, 'asr', (s) => s[0].points === 14);
      assert.match((await p.page.textContent(`li.run-row[data-run="${BIPOLICY_ID}"] [data-status]`)) ?? '', /running/);
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

    it('shows a newer-format run and a corrupt one as errors, and survives a malformed message', async () => {
      const newer = copyRun(BIPOLICY_ID, tmp);
      const runJson = path.join(newer, 'run.json');
      fs.writeFileSync(runJson, JSON.stringify({ ...JSON.parse(fs.readFileSync(runJson, 'utf8')), version: 2 }));
      const corrupt = path.join(tmp, 'half-written');
      fs.mkdirSync(corrupt);
      fs.writeFileSync(path.join(corrupt, 'run.json'), '{"format": "absp-run", "version": 1, "id": "x", "na');
      const p = await panel('dashboard', { runsFolder: FIXTURE_DIR, extraRuns: { 'from-the-future': newer, 'half-written': corrupt } });
      await waitForSeries(p.page, 'asr', (s) => s.length === 2);
      const future = (await p.page.textContent('li.run-row[data-run="from-the-future"]')) ?? '';
      assert.match(future, /newer-format/);
      assert.match(future, /format version 2, newer than the version 1/);
      assert.match((await p.page.textContent('li.run-row[data-run="half-written"]')) ?? '', /corrupt.*not valid JSON/);
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
      assert.deepEqual((await series(p.page, 'asr')).map((s) => s.points), [12, 12], 'the charts are still there');
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
      const successes = all.filter((x) => outcomeOf(x) === 'attack-success');
      await choose(p.page, 'outcome', 'Successful attacks');
      await p.page.waitForFunction((n) => document.getElementById('position')?.textContent === `1 / ${n}`, successes.length);
      for (let i = 0; i < successes.length; i++) {
        assert.equal(await p.page.getAttribute('article.exchange', 'data-outcome'), 'attack-success');
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
      await p.page.waitForFunction((n) => document.getElementById('position')?.textContent === `1 / ${n}`, matching.length);
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
      await choose(p.page, 'outcome', 'Successful attacks');
      await choose(p.page, 'replay round', 'round 2');
      await p.page.click('vscode-button[data-name="replay"]');
      await p.page.waitForSelector('[data-replay="loading"]');
      assert.match((await p.page.textContent('[data-replay="loading"]')) ?? '', /round 2 adapters/);
      await p.screenshot('stepper-replay-loading');
      await p.page.waitForSelector('[data-replay="done"]');
      assert.match((await p.page.textContent('[data-replay="done"]')) ?? '', /Round 2 defender’s answer\s*I will not help with that\./);
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
      // Default: the first trained round of the attacker against the last.
      assert.match((await p.page.textContent('.summary')) ?? '', /attacker · round 1 against attacker · round 3: 6 modules/);
      await choose(p.page, 'kind', 'Attacker vs defender');
      await p.page.click('vscode-button[data-name="compare"]');
      await p.page.waitForSelector('.summary:has-text("attacker · round 3 against defender · round 3")');
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
      assert.ok(p.host.received.filter((m) => m.type === 'adapter-diff').length >= 2);

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
