/**
 * Adapter diff: how the LoRA updates ΔW = scale·B·A differ between two rounds of one adapter, or
 * between the attacker and the defender of one round — per layer and module: norms, the norm of the
 * change, cosine, singular values, and principal angles between the subspaces they write to and
 * read from. The host does the linear algebra (in a worker); this panel asks and draws.
 */
import '../lib/csp-safe-zod';
import { z } from 'zod';
import { AdapterDiffResultSchema, type AdapterDiffResult, type AdapterRef, type HostMessage, type RunSummary } from '../protocol';
import { BarChartView, HeatmapView, applyTheme, watchTheme } from '../lib/charts';
import { h, replaceChildren } from '../lib/dom';
import { button, singleSelect } from '../lib/elements';
import { degrees, num, pct } from '../lib/format';
import { magnitudeScale, rateScale, signedScale } from '../lib/palette';
import { announceReady, connectHost, newRequestId } from '../lib/host';
import { Notices, emptyState } from '../lib/notices';

/** What the layers × modules heatmap colours by. */
const HEATMAP_METRICS = {
  cosine: { label: 'cosine of ΔW₁ and ΔW₂', format: (v: number | null) => num(v, 2) },
  columnOverlap: { label: 'column-space overlap', format: (v: number | null) => num(v, 2) },
  rowOverlap: { label: 'row-space overlap', format: (v: number | null) => num(v, 2) },
  normDiff: { label: '‖ΔW₂ − ΔW₁‖', format: (v: number | null) => num(v, 2) },
  relativeChange: { label: 'relative change', format: (v: number | null) => pct(v) },
} as const;
type HeatmapMetric = keyof typeof HEATMAP_METRICS;

const StateSchema = z.object({
  run: z.string().nullable(),
  kind: z.enum(['rounds', 'roles']),
  heatmap: z.enum(Object.keys(HEATMAP_METRICS) as [HeatmapMetric, ...HeatmapMetric[]]).catch('cosine'),
  slot: z.string().nullable(),
  roundA: z.number().int().nullable(),
  roundB: z.number().int().nullable(),
  round: z.number().int().nullable(),
  module: z.string().nullable(),
  result: AdapterDiffResultSchema.nullable(),
});
type State = z.infer<typeof StateSchema>;

type Pending = { requestId: string; done: number; total: number } | null;

const notices = new Notices();
// Attacker against defender is the question this panel answers first: how separate are the two roles?
let state: State = { run: null, kind: 'roles', heatmap: 'cosine', slot: null, roundA: null, roundB: null, round: null, module: null, result: null };
let summaries: RunSummary[] = [];
let pending: Pending = null;
let failure: string | null = null;

const host = connectHost<State>({ panel: 'adapter-diff', stateSchema: StateSchema, onMessage: handle, onError: (title, message) => notices.error(title, message) });
applyTheme();

const app = document.getElementById('app')!;
const controls = h('div', { class: 'toolbar controls' });
const results = h('div', { class: 'results' });
const normsChart = new BarChartView({ id: 'norms', title: 'Size of each update', hint: '‖ΔW‖_F of the two adapters per module, and of their difference.', xLabel: 'module', yLabel: 'Frobenius norm' });
const similarityChart = new BarChartView({ id: 'similarity', title: 'How alike the two updates are', hint: 'Cosine of ΔW₁ and ΔW₂, and the overlap (mean cos² of the principal angles) of the subspaces they write to (columns) and read from (rows). 1 = same, 0 = orthogonal.', xLabel: 'module', yLabel: 'similarity', yMin: 0, yMax: 1 });
const sigmaChart = new BarChartView({ id: 'sigma', title: 'Singular values', hint: 'σᵢ of ΔW for the selected module: how many directions each update really uses.', xLabel: 'index', yLabel: 'σ' });
const heatmap = new HeatmapView({ id: 'layers-modules', title: 'Layers × modules', hint: 'Each cell is one LoRA module of one layer; click a cell to select that module.' });
const anglesChart = new BarChartView({ id: 'angles', title: 'Principal angles', hint: 'Between the two updates’ column spaces and row spaces, for the selected module; 0° = shared direction, 90° = orthogonal.', xLabel: 'angle index', yLabel: 'degrees', yMin: 0, yMax: 90 });

replaceChildren(
  app,
  h('header', { class: 'panel-header' }, h('h1', { text: 'ABSP Lab — Adapter Diff' }), h('span', { class: 'subtitle', text: 'how separate are the two roles?' })),
  notices.element,
  controls,
  results,
);
app.removeAttribute('aria-busy');
replaceChildren(results, emptyState('Waiting for the extension to list the runs…', 'loading'));
state = host.savedState() ?? state;
watchTheme(() => {});
announceReady(host, 'adapter-diff');

function handle(msg: HostMessage): void {
  switch (msg.type) {
    case 'init': {
      summaries = msg.runs;
      const usable = summaries.filter((s) => !s.error && Object.keys(s.adapters ?? {}).length > 0);
      const wanted = msg.focus?.runs[0] ?? state.run;
      state.run = usable.find((s) => s.run === wanted)?.run ?? usable[0]?.run ?? null;
      if (msg.focus?.runs[0] && msg.focus.runs[0] === state.run && msg.focus.round === undefined && canCompareRoles(summary())) state.kind = 'roles';
      fixSelection();
      if (msg.focus?.round !== undefined && state.run === msg.focus.runs[0]) focusRound(msg.focus.round);
      renderControls();
      if (state.result && sameRequest(state.result)) renderResult(state.result);
      else if (state.run) compare();
      else replaceChildren(results, emptyState('No run has saved adapters yet: they appear after round 0 is written.'));
      return;
    }
    case 'runs':
      summaries = msg.runs;
      fixSelection();
      renderControls();
      return;
    case 'adapter-diff-progress':
      if (pending?.requestId !== msg.requestId) return;
      pending = { ...pending, done: msg.done, total: msg.total };
      renderPending();
      return;
    case 'adapter-diff-result':
      if (pending?.requestId !== msg.requestId) return;
      pending = null;
      failure = null;
      state.result = msg.result;
      if (!msg.result.modules.some((m) => m.key === state.module)) state.module = msg.result.modules[0]?.key ?? null;
      save();
      renderControls();
      renderResult(msg.result);
      return;
    case 'error':
      if (msg.requestId && pending?.requestId === msg.requestId) {
        pending = null;
        failure = msg.message;
        renderControls();
        replaceChildren(results, emptyState(`The comparison failed: ${msg.message}`, 'error'));
        return;
      }
      notices.error('Error', msg.message, { detail: msg.detail });
      return;
    default:
      return;
  }
}

function summary(): RunSummary | undefined {
  return summaries.find((s) => s.run === state.run);
}

/** Rounds (complete, with adapters) and the adapter folders of each. */
function roundsOf(s: RunSummary | undefined): { round: number; slots: string[] }[] {
  return Object.entries(s?.adapters ?? {})
    .map(([r, slots]) => ({ round: Number(r), slots }))
    .filter((r) => r.slots.length > 0)
    .sort((a, b) => a.round - b.round);
}

function slotsOf(s: RunSummary | undefined): string[] {
  return [...new Set(roundsOf(s).flatMap((r) => r.slots))].sort();
}

function canCompareRoles(s: RunSummary | undefined): boolean {
  return roundsOf(s).some((r) => r.slots.includes('attacker') && r.slots.includes('defender'));
}

/** Keeps the choices valid for the run: the defaults compare the first trained round with the last. */
function fixSelection(): void {
  const s = summary();
  const rounds = roundsOf(s);
  const slots = slotsOf(s);
  if (!state.slot || !slots.includes(state.slot)) state.slot = slots[0] ?? null;
  const withSlot = rounds.filter((r) => state.slot && r.slots.includes(state.slot)).map((r) => r.round);
  const trained = withSlot.filter((r) => r > 0);
  if (state.roundA === null || !withSlot.includes(state.roundA)) state.roundA = trained[0] ?? withSlot[0] ?? null;
  if (state.roundB === null || !withSlot.includes(state.roundB)) state.roundB = withSlot[withSlot.length - 1] ?? null;
  if (state.kind === 'roles' && !canCompareRoles(s)) state.kind = 'rounds';
  const both = rounds.filter((r) => r.slots.includes('attacker') && r.slots.includes('defender')).map((r) => r.round);
  if (state.round === null || !both.includes(state.round)) state.round = both[both.length - 1] ?? null;
  save();
}

/**
 * Opened on a round (from the Runs view): show what that round changed — the adapter against its
 * previous round — and, for the roles comparison, that round's attacker against its defender.
 */
function focusRound(round: number): void {
  state.kind = 'rounds';
  const withSlot = roundsOf(summary()).filter((r) => state.slot && r.slots.includes(state.slot)).map((r) => r.round);
  if (withSlot.includes(round)) {
    state.roundB = round;
    state.roundA = withSlot.filter((r) => r < round).pop() ?? round;
  }
  state.round = round;
  fixSelection();
}

function request(): { left: AdapterRef; right: AdapterRef } | null {
  if (!state.run) return null;
  if (state.kind === 'roles') {
    if (state.round === null) return null;
    return { left: { run: state.run, round: state.round, slot: 'attacker' }, right: { run: state.run, round: state.round, slot: 'defender' } };
  }
  if (state.slot === null || state.roundA === null || state.roundB === null) return null;
  return { left: { run: state.run, round: state.roundA, slot: state.slot }, right: { run: state.run, round: state.roundB, slot: state.slot } };
}

function sameRequest(result: AdapterDiffResult): boolean {
  const r = request();
  return r !== null && JSON.stringify([r.left, r.right]) === JSON.stringify([result.left, result.right]);
}

function compare(): void {
  const r = request();
  if (!r) return;
  if (pending) host.post({ type: 'cancel', requestId: pending.requestId });
  pending = { requestId: newRequestId('diff'), done: 0, total: 0 };
  failure = null;
  host.post({ type: 'adapter-diff', requestId: pending.requestId, ...r });
  renderControls();
  renderPending();
}

function renderControls(): void {
  const s = summary();
  const rounds = roundsOf(s);
  const roundOptions = (slot: string | null) => rounds.filter((r) => slot === null || r.slots.includes(slot)).map((r) => ({ value: String(r.round), label: r.round === 0 ? 'round 0 (initial)' : `round ${r.round}` }));
  const onChange = (apply: (v: string) => void) => (v: string) => {
    const run = state.run;
    apply(v);
    fixSelection();
    renderControls();
    // A result must never pass for the new choice: another run's is dropped, the same run's is marked.
    if (state.run !== run) {
      state.result = null;
      save();
      replaceChildren(results, emptyState('Press Compare to compare the adapters chosen above.'));
    } else if (state.result) renderResult(state.result);
  };
  const runs = summaries.map((x) => ({ value: x.run, label: x.error ? `${x.label} (cannot open)` : `${x.label} (${x.mode})`, disabled: !!x.error || roundsOf(x).length === 0 }));
  const kinds = [
    { value: 'rounds', label: 'Two rounds of one adapter' },
    { value: 'roles', label: canCompareRoles(s) ? 'Attacker vs defender' : 'Attacker vs defender (this run has one shared adapter)', disabled: !canCompareRoles(s) },
  ];
  const go = button('Compare', compare, { name: 'compare' });
  go.disabled = pending !== null || request() === null;
  replaceChildren(
    controls,
    h('label', { class: 'field' }, 'Run', singleSelect('run', runs, state.run ?? '', onChange((v) => (state.run = v)))),
    h('label', { class: 'field' }, 'Compare', singleSelect('kind', kinds, state.kind, onChange((v) => (state.kind = v as State['kind'])))),
    ...(state.kind === 'rounds'
      ? [
          h('label', { class: 'field' }, 'Adapter', singleSelect('slot', slotsOf(s).map((x) => ({ value: x, label: x })), state.slot ?? '', onChange((v) => (state.slot = v)))),
          h('label', { class: 'field' }, 'From', singleSelect('round-a', roundOptions(state.slot), String(state.roundA ?? ''), onChange((v) => (state.roundA = Number(v))))),
          h('label', { class: 'field' }, 'to', singleSelect('round-b', roundOptions(state.slot), String(state.roundB ?? ''), onChange((v) => (state.roundB = Number(v))))),
        ]
      : [h('label', { class: 'field' }, 'Round', singleSelect('round', roundOptions(null).filter((o) => rounds.find((r) => String(r.round) === o.value)?.slots.includes('defender')), String(state.round ?? ''), onChange((v) => (state.round = Number(v)))))]),
    go,
  );
}

function renderPending(): void {
  if (!pending) return;
  const progress = pending.total ? `${pending.done} of ${pending.total} modules` : 'loading the adapters';
  replaceChildren(results, h('div', { class: 'empty-state loading', attrs: { role: 'status' }, dataset: { state: 'loading' } }, h('vscode-progress-ring'), h('span', { text: ` Comparing… ${progress}` })));
}

function label(ref: AdapterRef): string {
  return `${ref.slot} · round ${ref.round}`;
}

function moduleName(m: { layer: number | null; module: string }): string {
  return m.layer === null ? m.module : `L${m.layer} ${m.module}`;
}

function renderResult(result: AdapterDiffResult): void {
  if (failure) return;
  const left = label(result.left);
  const right = label(result.right);
  const ms = result.modules;
  if (ms.length === 0) {
    replaceChildren(results, emptyState('The two adapters share no LoRA modules: were they trained on the same base model with the same target modules?', 'error'));
    return;
  }
  const stale = !sameRequest(result);
  const categories = ms.map(moduleName);
  normsChart.update(categories, [
    { label: `‖ΔW‖ ${left}`, values: ms.map((m) => m.normLeft), colour: 0 },
    { label: `‖ΔW‖ ${right}`, values: ms.map((m) => m.normRight), colour: 1 },
    { label: '‖difference‖', values: ms.map((m) => m.normDiff), colour: 3 },
  ]);
  similarityChart.update(categories, [
    { label: 'cosine', values: ms.map((m) => m.cosine), colour: 0 },
    { label: 'column-space overlap', values: ms.map((m) => m.columnOverlap), colour: 2 },
    { label: 'row-space overlap', values: ms.map((m) => m.rowOverlap), colour: 4 },
  ]);
  renderHeatmap(result);
  const heatmapPick = singleSelect('heatmap metric', (Object.keys(HEATMAP_METRICS) as HeatmapMetric[]).map((k) => ({ value: k, label: HEATMAP_METRICS[k].label })), state.heatmap, (v) => {
    state.heatmap = v as HeatmapMetric;
    save();
    renderHeatmap(result);
  });
  const zeroUpdates = ms.filter((m) => m.normLeft === 0 || m.normRight === 0).length;
  const cosines = ms.map((m) => m.cosine).filter((c): c is number => c !== null);
  const meanCos = cosines.length ? cosines.reduce((a, b) => a + b, 0) / cosines.length : null;
  replaceChildren(
    results,
    stale
      ? h('p', { class: 'notice warning stale', attrs: { role: 'status' }, dataset: { stale: 'true' } }, h('strong', { text: 'Not the current choice. ' }), `This result compares ${left} with ${right}; press Compare for the adapters chosen above.`)
      : null,
    h(
      'p',
      { class: `summary${stale ? ' is-stale' : ''}`, dataset: { modules: String(ms.length) } },
      `${left} against ${right}: ${ms.length} modules; mean cosine ${num(meanCos)}.`,
      zeroUpdates ? ` ${zeroUpdates} module${zeroUpdates === 1 ? ' has' : 's have'} a zero update on one side (a freshly initialised adapter has B = 0), so cosine and angles are undefined there.` : '',
    ),
    ...result.warnings.map((w) => h('p', { class: 'notice warning', text: w })),
    result.onlyLeft.length || result.onlyRight.length ? h('p', { class: 'notice warning', text: `Modules in only one adapter: ${[...result.onlyLeft, ...result.onlyRight].join(', ')}` }) : null,
    h('div', { class: 'toolbar' }, h('label', { class: 'field' }, 'Colour the cells by', heatmapPick)),
    heatmap.element,
    h('div', { class: 'chart-grid' }, normsChart.element, similarityChart.element),
    h('h2', { text: 'Per module' }),
    table(result),
    h('h2', { class: 'module-heading', text: `Module ${state.module ?? ''}` }),
    h('div', { class: 'chart-grid' }, sigmaChart.element, anglesChart.element),
  );
  renderModule(result);
}

function table(result: AdapterDiffResult): HTMLElement {
  const heads = ['module', 'shape', '‖ΔW₁‖', '‖ΔW₂‖', '‖ΔW₂ − ΔW₁‖', 'change', 'cosine', 'σ₁ (1)', 'σ₁ (2)', 'rank', 'column angles', 'row angles'];
  const mean = (a: number[]) => (a.length ? degrees(a.reduce((s, x) => s + x, 0) / a.length) : '—');
  const rows = result.modules.map((m) => {
    const tr = h(
      'tr',
      { class: m.key === state.module ? 'selected' : '', dataset: { module: m.key }, attrs: { tabindex: 0, title: m.key } },
      h('td', { text: moduleName(m) }),
      h('td', { class: 'muted', text: `${m.outFeatures}×${m.inFeatures}` }),
      h('td', { text: num(m.normLeft) }),
      h('td', { text: num(m.normRight) }),
      h('td', { text: num(m.normDiff) }),
      h('td', { text: m.relativeChange === null ? '—' : `${num(m.relativeChange * 100, 3)}%` }),
      h('td', { text: num(m.cosine) }),
      h('td', { text: num(m.sigmaLeft[0]) }),
      h('td', { text: num(m.sigmaRight[0]) }),
      h('td', { text: `${m.rankLeft} / ${m.rankRight}` }),
      h('td', { text: mean(m.columnAngles) }),
      h('td', { text: mean(m.rowAngles) }),
    );
    const select = () => {
      state.module = m.key;
      save();
      renderResult(result);
    };
    tr.addEventListener('click', select);
    tr.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') select();
    });
    return tr;
  });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data modules' }, h('thead', null, h('tr', null, ...heads.map((t) => h('th', { text: t })))), h('tbody', null, ...rows)));
}

function renderModule(result: AdapterDiffResult): void {
  const m = result.modules.find((x) => x.key === state.module) ?? result.modules[0];
  const n = Math.max(m.sigmaLeft.length, m.sigmaRight.length);
  sigmaChart.update(
    Array.from({ length: n }, (_, i) => String(i + 1)),
    [
      { label: label(result.left), values: m.sigmaLeft, colour: 0 },
      { label: label(result.right), values: m.sigmaRight, colour: 1 },
    ],
  );
  const k = Math.max(m.columnAngles.length, m.rowAngles.length);
  anglesChart.update(
    Array.from({ length: k }, (_, i) => `θ${i + 1}`),
    [
      { label: 'column spaces', values: m.columnAngles.map((a) => (a * 180) / Math.PI), colour: 2 },
      { label: 'row spaces', values: m.rowAngles.map((a) => (a * 180) / Math.PI), colour: 4 },
    ],
  );
}

/** The modules as a layers × module-types grid, coloured by the chosen metric, with its scale. */
function renderHeatmap(result: AdapterDiffResult): void {
  const metric = state.heatmap;
  const spec = HEATMAP_METRICS[metric];
  const layerName = (l: number | null) => (l === null ? 'other' : `L${l}`);
  const rows = [...new Set(result.modules.map((m) => m.layer))].sort((a, b) => (a ?? 1e9) - (b ?? 1e9)).map(layerName);
  const columns = [...new Set(result.modules.map((m) => m.module))];
  const byCell = new Map(result.modules.map((m) => [`${layerName(m.layer)}|${m.module}`, m]));
  const values = rows.map((r) => columns.map((c) => {
    const m = byCell.get(`${r}|${c}`);
    const v = m ? m[metric] : null;
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  }));
  const max = Math.max(0, ...values.flat().filter((v): v is number => v !== null));
  heatmap.update(
    {
      rows,
      columns,
      values,
      rowTitle: 'layer',
      columnTitle: 'module',
      valueName: spec.label,
      format: spec.format,
      describe: (row, column, v) => `${row} ${column}: ${spec.label} ${spec.format(v)}`,
      onCell: (row, column) => {
        const m = byCell.get(`${row}|${column}`);
        if (!m) return;
        state.module = m.key;
        save();
        renderResult(result);
      },
    },
    (t) => (metric === 'cosine' ? signedScale(t.kind) : metric === 'columnOverlap' || metric === 'rowOverlap' ? rateScale(t.kind) : magnitudeScale(t.kind, max)),
  );
  heatmap.element.dataset.metric = metric;
}

function save(): void {
  host.saveState(state);
}
