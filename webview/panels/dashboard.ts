/**
 * The dashboard: a table of the runs and of the sweeps of seeds (headline metrics before → after; a
 * sweep's row per method with medians and intervals over seeds; the checked rows are overlaid), live
 * line charts of the game (Nash gap, rewards, jailbreaks, over-refusal, KL to the anchor,
 * diversity) for the runs checked — e.g. ABSP's `bipolicy` against a `shared-lora` baseline —, the
 * cross-play matrix as a heatmap, and the runs' evaluations.
 */
import '../lib/csp-safe-zod';
import { z } from 'zod';
import type { HostMessage, RunData, RunSummary, SweepOverview } from '../protocol';
import { HeatmapView, LineChartView, applyTheme, currentTheme, watchTheme } from '../lib/charts';
import { h, replaceChildren } from '../lib/dom';
import { setSelectOptions, singleSelect } from '../lib/elements';
import { announceReady, connectHost } from '../lib/host';
import { Notices, emptyState } from '../lib/notices';
import { rateScale } from '../lib/palette';
import { assignColours } from '../lib/run-identity';
import { applyAppend, describeRunIssues } from '../lib/run-state';
import { nextSort, runRows, sweepRowKey, sweepRows } from '../lib/runs-table';
import { runsTableView } from '../lib/runs-table-view';
import { METRIC_TITLES, evalTable } from '../lib/eval-table';
import { pct } from '../lib/format';
import { DASHBOARD_CHARTS, roundStarts, seriesFor, sweepSeriesFor, type RoundStart, type SweepLine } from '../lib/series';

const SMOOTHING = [
  { value: '0', label: 'No smoothing' },
  { value: '0.6', label: 'Smoothing 0.6' },
  { value: '0.8', label: 'Smoothing 0.8' },
  { value: '0.95', label: 'Smoothing 0.95' },
];

// Fields added after the first version default, so a panel restored from an older state keeps its runs.
const StateSchema = z.object({
  runs: z.array(z.string()),
  /** Rows of sweeps (one per sweep and method, runs-table.ts's sweepRowKey) drawn as median and band. */
  sweeps: z.array(z.string()).default([]),
  crossplayRun: z.string().nullable(),
  /** Palette slot per run: a run keeps its colour (run-identity.ts). */
  colours: z.record(z.string(), z.number().int().min(0)).default({}),
  sort: z.object({ key: z.string(), dir: z.enum(['asc', 'desc']) }).nullable().default(null),
  smoothing: z.number().min(0).max(0.99).default(0),
});
type State = z.infer<typeof StateSchema>;

const notices = new Notices();
const runs = new Map<string, RunData>();
let summaries: RunSummary[] = [];
let sweeps: SweepOverview[] = [];
let focused: string | null = null;
let state: State = { runs: [], sweeps: [], crossplayRun: null, colours: {}, sort: null, smoothing: 0 };

const host = connectHost<State>({
  panel: 'dashboard',
  stateSchema: StateSchema,
  onMessage: handle,
  onError: (title, message) => notices.error(title, message),
});

applyTheme();
const app = document.getElementById('app')!;
const table = h('section', { class: 'runs-table-section', attrs: { 'aria-label': 'Runs' } });
const charts = DASHBOARD_CHARTS.map(
  (spec) =>
    [
      spec,
      new LineChartView({ id: spec.id, title: spec.title, hint: spec.hint, xLabel: spec.x === 'step' ? 'step' : 'round', yLabel: spec.yLabel, yMin: spec.yMin, yMax: spec.yMax, integerX: spec.x === 'round', perStep: spec.x === 'step' }),
    ] as const,
);
const heatmap = new HeatmapView({ id: 'crossplay', title: 'Cross-play: jailbreak rate', hint: 'Each saved attacker (rows) against each saved defender (columns), on harmful seeds. Lower in the right-hand columns means later defenders hold up.' });
const crossplaySelect = singleSelect('crossplay run', [], '', (value) => {
  state.crossplayRun = value;
  save();
  renderCrossplay();
});
const smoothingSelect = singleSelect('smoothing', SMOOTHING, '0', (value) => {
  state.smoothing = Number(value);
  save();
  updateCharts();
});
const crossplayNote = h('p', { class: 'hint' });
const evalSection = h('section', { class: 'evals', attrs: { 'aria-label': 'Evaluations' } });
const body = h('div', { class: 'dashboard-body' });

replaceChildren(
  app,
  h('header', { class: 'panel-header' }, h('h1', { text: 'ABSP Lab — Dashboard' }), h('span', { class: 'subtitle', text: 'the game as it trains' })),
  notices.element,
  table,
  body,
);
app.removeAttribute('aria-busy');
replaceChildren(body, emptyState('Waiting for the extension to list the runs…', 'loading'));
const saved = host.savedState();
const restored = saved !== undefined;
state = saved ?? state;
setSelectOptions(smoothingSelect, SMOOTHING, String(state.smoothing));
watchTheme(() => renderTable());
announceReady(host, 'dashboard');

function handle(msg: HostMessage): void {
  switch (msg.type) {
    case 'init': {
      setSummaries(msg.runs, msg.sweeps);
      const sweepKeys = new Set(sweepLines().map((l) => l.key));
      const available = new Set(summaries.filter((s) => !s.error).map((s) => s.run));
      const kept = state.runs.filter((r) => available.has(r));
      const focus = (msg.focus?.runs ?? []).filter((r) => available.has(r));
      focused = focus[0] ?? null;
      // Opened on a run (the Runs view, a finished job): show it, next to what the panel already showed.
      if (focus.length) state.runs = restored || kept.length ? [...kept, ...focus.filter((r) => !kept.includes(r))] : focus;
      else state.runs = restored ? kept : [...available].slice(0, 4);
      // A new panel shows the newest sweep's methods; a restored one what it showed.
      state.sweeps = restored ? state.sweeps.filter((k) => sweepKeys.has(k)) : sweepLines().filter((l) => l.sweep === sweeps[0]?.sweep).map((l) => l.key);
      if (focused && state.crossplayRun !== focused) state.crossplayRun = focused;
      save();
      renderTable();
      renderBody();
      host.post({ type: 'watch-runs', runs: state.runs });
      return;
    }
    case 'runs':
      setSummaries(msg.runs, msg.sweeps);
      renderTable();
      // The first runs or sweeps replace the empty state; a sweep's new curves (summarised by the host as
      // its rounds end) are drawn.
      if (!body.querySelector('.chart-grid')) renderBody();
      else if (state.sweeps.length) updateCharts();
      return;
    case 'run-data':
      runs.set(msg.data.run, msg.data);
      notices.clear(`run:${msg.data.run}`);
      showIssues(msg.data);
      renderBody();
      return;
    case 'run-append': {
      const data = runs.get(msg.run);
      if (!data) return; // its run-data is on the way and will include these records
      runs.set(msg.run, applyAppend(data, msg));
      updateCharts();
      if (msg.crossplay !== undefined) renderCrossplay();
      if (msg.evals !== undefined) renderEvals();
      renderTable();
      return;
    }
    case 'error':
      notices.error(msg.run ? `${labelOf(msg.run)} cannot be shown` : 'Error', msg.message, { key: msg.run ? `run:${msg.run}` : undefined, detail: msg.detail });
      if (msg.run) renderBody();
      return;
    default:
      return; // messages for other panels
  }
}

/** New runs list: colours for runs and sweep rows not seen before (seen ones keep theirs). */
function setSummaries(list: RunSummary[], sweepList: SweepOverview[]): void {
  summaries = list;
  sweeps = sweepList;
  const identities = [
    ...list.filter((s) => !s.error).map((s) => ({ run: s.run, id: s.id ?? s.run })),
    ...sweepLines().map((l) => ({ run: l.key, id: `${l.id}#${l.summary.mode}` })),
  ];
  const colours = assignColours(identities, state.colours, currentTheme().palette.length);
  if (JSON.stringify(colours) !== JSON.stringify(state.colours)) {
    state.colours = colours;
    save();
  }
}

function renderTable(): void {
  replaceChildren(
    table,
    runsTableView({
      rows: [...sweepRows(sweeps), ...runRows(summaries, labelOf)],
      selected: new Set([...state.runs, ...state.sweeps]),
      sort: state.sort,
      focused,
      colourOf,
      liveStatus: (run) => runs.get(run)?.status ?? null,
      onSelect: (selected) => {
        const sweepKeys = new Set(sweepLines().map((l) => l.key));
        state.runs = selected.filter((k) => !sweepKeys.has(k));
        state.sweeps = selected.filter((k) => sweepKeys.has(k));
        save();
        host.post({ type: 'watch-runs', runs: state.runs });
        renderTable();
        renderBody();
      },
      onSort: (key) => {
        state.sort = nextSort(state.sort, key);
        save();
        renderTable();
      },
    }),
  );
}

function renderBody(): void {
  if (summaries.length === 0 && sweeps.length === 0) {
    replaceChildren(body, emptyState('No runs yet. Start one with “ABSP: Start Run”, or point the runs-folder setting at a folder of run directories.'));
    return;
  }
  if (state.runs.length === 0 && state.sweeps.length === 0) {
    replaceChildren(body, emptyState('Check one or more runs in the table to chart them.'));
    return;
  }
  replaceChildren(
    body,
    h(
      'div',
      { class: 'toolbar chart-controls' },
      h('label', { class: 'field' }, 'Per-step charts', smoothingSelect),
      h('span', { class: 'muted', text: 'Solid lines: attacker; dashed: defender. Dotted verticals: a new round begins. A sweep: its median over seeds, the band its 95% interval (per-round charts).' }),
    ),
    h('div', { class: 'chart-grid' }, ...charts.map(([, view]) => view.element)),
    h('h2', { text: 'Cross-play' }),
    h('div', { class: 'toolbar' }, h('label', { class: 'field' }, 'Run', crossplaySelect), crossplayNote),
    heatmap.element,
    h('h2', { text: 'Evaluations' }),
    evalSection,
  );
  updateCharts();
  renderCrossplay();
  renderEvals();
}

function shownRuns(): RunData[] {
  return state.runs.map((r) => runs.get(r)).filter((d): d is RunData => d !== undefined);
}

function updateCharts(): void {
  const data = shownRuns();
  const starts = new Map<string, RoundStart[]>(data.map((d) => [d.run, roundStarts(d)]));
  const chosen = new Set(state.sweeps);
  const lines = sweepLines().filter((l) => chosen.has(l.key));
  for (const [spec, view] of charts) view.update([...sweepSeriesFor(spec, lines), ...seriesFor(spec, data, (d) => labelOf(d.run))], colourOf, { roundStarts: starts, smoothing: state.smoothing });
  const waiting = state.runs.filter((r) => !runs.has(r));
  body.dataset.loading = waiting.length ? waiting.join(',') : '';
}

function renderCrossplay(): void {
  const withCrossplay = shownRuns().filter((d) => d.crossplay);
  const options = withCrossplay.map((d) => ({ value: d.run, label: labelOf(d.run) }));
  const chosen = withCrossplay.find((d) => d.run === state.crossplayRun) ?? withCrossplay.find((d) => d.run === focused) ?? withCrossplay[0];
  setSelectOptions(crossplaySelect, options, chosen?.run ?? '');
  const c = chosen?.crossplay;
  if (!c) {
    crossplayNote.textContent = 'No cross-play results for the runs shown: run “ABSP: Run Cross-Play”.';
    heatmap.update(null, (t) => rateScale(t.kind));
    return;
  }
  const unique = (names: string[]) => names.map((l, i) => (names.indexOf(l) === i ? l : `${l} (${i})`));
  crossplayNote.textContent = `${c.method === 'exact' ? 'Exact game values' : `Estimated from ${c.samples} samples per pair`}; rows are attackers, columns defenders.`;
  heatmap.update(
    {
      rows: unique(c.attackers.map((a) => (a.run === chosen.info.id ? a.label : `${a.label} (${a.run})`))),
      columns: unique(c.defenders.map((d) => d.label)),
      values: c.asr,
      rowTitle: 'attacker',
      columnTitle: 'defender',
      valueName: 'jailbreak rate',
      format: (v) => pct(v),
      describe: (row, column, v) => `attacker ${row} vs defender ${column}: ${pct(v, 1)} jailbreaks`,
    },
    (t) => rateScale(t.kind),
  );
}

function renderEvals(): void {
  const { columns, rows } = evalTable(shownRuns(), (d) => labelOf(d.run));
  if (rows.length === 0) {
    replaceChildren(evalSection, h('p', { class: 'hint', text: 'No evaluations of the runs shown: run “ABSP: Evaluate” on a run to measure its defender on a data file.' }));
    return;
  }
  const heads = ['run', 'evaluation', 'data', ...columns.map((c) => METRIC_TITLES[c] ?? c)];
  const headClass = (i: number) => (i < 3 ? 'text' : '');
  const tbody = rows.map((r) =>
    h(
      'tr',
      { attrs: { 'data-run': r.run, 'data-eval': r.name } },
      h('td', { text: r.runLabel }),
      h('td', { class: 'text', text: r.name, attrs: { title: `written ${r.created}` } }),
      h('td', { class: 'text', text: r.data, attrs: { title: r.dataPath } }),
      ...columns.map((c) => h('td', { text: r.cells[c], attrs: { 'data-metric': c } })),
    ),
  );
  replaceChildren(
    evalSection,
    h('p', { class: 'hint', text: 'The defender of each run on a data file (greedy answers, judged by the run’s judge); rates with their 95% Wilson interval.' }),
    h('div', { class: 'table-wrap' }, h('table', { class: 'data evals' }, h('thead', null, h('tr', null, ...heads.map((t, i) => h('th', { class: headClass(i), text: t })))), h('tbody', null, ...tbody))),
  );
}

function showIssues(data: RunData): void {
  const text = describeRunIssues(data);
  if (text) notices.warning(`${labelOf(data.run)}: the run directory has damaged records`, text, { key: `issues:${data.run}` });
  else notices.clear(`issues:${data.run}`);
}

/** A run keeps its colour wherever it appears, across reloads and as runs are added (run-identity.ts). */
function colourOf(run: string): string {
  const palette = currentTheme().palette;
  return palette[(state.colours[run] ?? 0) % palette.length];
}

/** Each method of each readable sweep, as the charts draw it. */
function sweepLines(): (SweepLine & { sweep: string; id: string })[] {
  return sweeps.filter((s) => !s.error).flatMap((s) => s.modes.map((m) => ({ key: sweepRowKey(s.sweep, m.mode), label: s.label, summary: m, sweep: s.sweep, id: s.id })));
}

/** The host's label: "name · start time", distinct among the runs. */
function labelOf(run: string): string {
  return summaries.find((x) => x.run === run)?.label ?? run;
}

function save(): void {
  host.saveState(state);
}
