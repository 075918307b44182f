/**
 * The dashboard: live line charts of the game (Nash gap, rewards, attack success, over-refusal, KL to
 * the anchor, diversity) for one or several runs overlaid — e.g. ABSP's `bipolicy` against a
 * `shared-lora` baseline — the cross-play matrix as a heatmap, and the runs' evaluations.
 */
import '../lib/csp-safe-zod';
import { z } from 'zod';
import type { HostMessage, RunData, RunSummary } from '../protocol';
import { HeatmapView, LineChartView, applyTheme } from '../lib/charts';
import { h, replaceChildren } from '../lib/dom';
import { setSelectOptions, singleSelect } from '../lib/elements';
import { announceReady, connectHost } from '../lib/host';
import { Notices, emptyState } from '../lib/notices';
import { runPicker } from '../lib/run-picker';
import { applyAppend, describeRunIssues } from '../lib/run-state';
import { METRIC_TITLES, evalTable } from '../lib/eval-table';
import { DASHBOARD_CHARTS, runLabel, seriesFor } from '../lib/series';

const StateSchema = z.object({ runs: z.array(z.string()), crossplayRun: z.string().nullable() });
type State = z.infer<typeof StateSchema>;

const notices = new Notices();
const runs = new Map<string, RunData>();
let summaries: RunSummary[] = [];
let state: State = { runs: [], crossplayRun: null };

const host = connectHost<State>({
  panel: 'dashboard',
  stateSchema: StateSchema,
  onMessage: handle,
  onError: (title, message) => notices.error(title, message),
});

const theme = applyTheme();
const app = document.getElementById('app')!;
const picker = h('section', { class: 'run-picker', attrs: { 'aria-label': 'Runs' } });
const charts = DASHBOARD_CHARTS.map(
  (spec) =>
    [spec, new LineChartView({ id: spec.id, title: spec.title, hint: spec.hint, xLabel: spec.x === 'step' ? 'step' : 'round', yLabel: spec.yLabel, yMin: spec.yMin, yMax: spec.yMax, integerX: spec.x === 'round' })] as const,
);
const heatmap = new HeatmapView({ id: 'crossplay', title: 'Cross-play: attack success', hint: 'Each saved attacker (rows) against each saved defender (columns), on harmful seeds. Lower in the right-hand columns means later defenders hold up.' });
const crossplaySelect = singleSelect('crossplay run', [], '', (value) => {
  state.crossplayRun = value;
  save();
  renderCrossplay();
});
const crossplayNote = h('p', { class: 'hint' });
const evalSection = h('section', { class: 'evals', attrs: { 'aria-label': 'Evaluations' } });
const body = h('div', { class: 'dashboard-body' });

replaceChildren(
  app,
  h('header', { class: 'panel-header' }, h('h1', { text: 'ABSP Lab — Dashboard' }), h('span', { class: 'subtitle', text: 'the game as it trains' })),
  notices.element,
  picker,
  body,
);
app.removeAttribute('aria-busy');
replaceChildren(body, emptyState('Waiting for the extension to list the runs…', 'loading'));
state = host.savedState() ?? state;
announceReady(host, 'dashboard');

function handle(msg: HostMessage): void {
  switch (msg.type) {
    case 'init': {
      summaries = msg.runs;
      const available = new Set(summaries.filter((s) => !s.error).map((s) => s.run));
      const saved = state.runs.filter((r) => available.has(r));
      const focus = (msg.focus?.runs ?? []).filter((r) => available.has(r));
      state.runs = focus.length ? focus : saved.length ? saved : [...available].slice(0, 4);
      save();
      renderPicker();
      renderBody();
      host.post({ type: 'watch-runs', runs: state.runs });
      return;
    }
    case 'runs':
      summaries = msg.runs;
      renderPicker();
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
      renderPicker();
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

function renderPicker(): void {
  replaceChildren(
    picker,
    runPicker(summaries, new Set(state.runs), colourOf, (selected) => {
      state.runs = selected;
      save();
      host.post({ type: 'watch-runs', runs: state.runs });
      renderBody();
    }, (run) => runs.get(run)?.status ?? null),
  );
}

function renderBody(): void {
  if (summaries.length === 0) {
    replaceChildren(body, emptyState('No runs yet. Start one with “ABSP: Start Run”, or point the runs-folder setting at a folder of run directories.'));
    return;
  }
  if (state.runs.length === 0) {
    replaceChildren(body, emptyState('Pick one or more runs above to chart them.'));
    return;
  }
  replaceChildren(
    body,
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
  for (const [spec, view] of charts) view.update(seriesFor(spec, data), colourOf);
  const waiting = state.runs.filter((r) => !runs.has(r));
  body.dataset.loading = waiting.length ? waiting.join(',') : '';
}

function renderCrossplay(): void {
  const withCrossplay = shownRuns().filter((d) => d.crossplay);
  const options = withCrossplay.map((d) => ({ value: d.run, label: runLabel(d) }));
  const chosen = withCrossplay.find((d) => d.run === state.crossplayRun) ?? withCrossplay[0];
  setSelectOptions(crossplaySelect, options, chosen?.run ?? '');
  const c = chosen?.crossplay;
  if (!c) {
    crossplayNote.textContent = 'No cross-play results for the runs shown: run “ABSP: Run Cross-Play”.';
    heatmap.update(null);
    return;
  }
  const unique = (labels: string[]) => labels.map((l, i) => (labels.indexOf(l) === i ? l : `${l} (${i})`));
  crossplayNote.textContent = `${c.method === 'exact' ? 'Exact game values' : `Estimated from ${c.samples} samples per pair`}; rows are attackers, columns defenders.`;
  heatmap.update({
    rows: unique(c.attackers.map((a) => (a.run === chosen.info.id ? a.label : `${a.label} (${a.run})`))),
    columns: unique(c.defenders.map((d) => d.label)),
    values: c.asr,
    rowTitle: 'attacker',
    columnTitle: 'defender',
  });
}

function renderEvals(): void {
  const { columns, rows } = evalTable(shownRuns(), runLabel);
  if (rows.length === 0) {
    replaceChildren(evalSection, h('p', { class: 'hint', text: 'No evaluations of the runs shown: run “ABSP: Evaluate” on a run to measure its defender on a data file.' }));
    return;
  }
  const heads = ['run', 'evaluation', 'data', ...columns.map((c) => METRIC_TITLES[c] ?? c)];
  const headClass = (i: number) => (i < 3 ? 'text' : '');
  const body = rows.map((r) =>
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
    h('div', { class: 'table-wrap' }, h('table', { class: 'data evals' }, h('thead', null, h('tr', null, ...heads.map((t, i) => h('th', { class: headClass(i), text: t })))), h('tbody', null, ...body))),
  );
}

function showIssues(data: RunData): void {
  const text = describeRunIssues(data);
  if (text) notices.warning(`${runLabel(data)}: the run directory has damaged records`, text, { key: `issues:${data.run}` });
  else notices.clear(`issues:${data.run}`);
}

/** A run keeps its colour wherever it appears: its place in the runs list picks it. */
function colourOf(run: string): string {
  const i = summaries.findIndex((s) => s.run === run);
  return theme.palette[(i < 0 ? 0 : i) % theme.palette.length];
}

function labelOf(run: string): string {
  const s = summaries.find((x) => x.run === run);
  return s?.label ?? run;
}

function save(): void {
  host.saveState(state);
}
