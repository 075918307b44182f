/**
 * The dialogue stepper: read a run's exchanges one at a time with the keyboard (j/k or the arrow
 * keys, Home/End), from a list of the exchanges with their outcome and rewards, filtered by outcome,
 * searched, round by round; see the other samples of an exchange's GRPO group and its annotations;
 * send one to the editor to annotate it, or replay its attack against another round's defender.
 */
import '../lib/csp-safe-zod';
import { z } from 'zod';
import { MAX_REPLAY_SAMPLES, outcomeOf, type Annotation, type Exchange, type HostMessage, type ReplayResult, type RunData, type RunSummary } from '../protocol';
import { h, isTypingTarget, replaceChildren, selectTarget } from '../lib/dom';
import { button, setSelectOptions, singleSelect, type SelectOption } from '../lib/elements';
import { annotationsView, describeAdapter, exchangeView, groupView, legendView, outcomeChip, replayResultView } from '../lib/exchange-view';
import { signed } from '../lib/format';
import { announceReady, connectHost, newRequestId } from '../lib/host';
import { Notices, emptyState } from '../lib/notices';
import { applyAppend, describeRunIssues } from '../lib/run-state';
import { statusBadge } from '../lib/status-badge';
import { FILTERS, FILTER_LABELS, countByFilter, groupKey, groupOf, keepPosition, visibleExchanges, type OutcomeFilter } from '../lib/stepper-model';

/** Above this many exchanges the stepper opens on the last round instead of all of them. */
const ALL_ROUNDS_LIMIT = 2000;

const StateSchema = z.object({
  run: z.string().nullable(),
  round: z.union([z.number().int(), z.literal('all')]).nullable(),
  // A filter saved by an older version (its outcome names changed) falls back to all exchanges.
  filter: z.enum(FILTERS).catch('all'),
  search: z.string(),
  exchange: z.string().nullable(),
  replayRound: z.number().int().nullable(),
  /** Answers a replay samples: one to read beside the recorded answer, more for a rate with an interval. */
  replaySamples: z.number().int().min(1).max(MAX_REPLAY_SAMPLES).catch(1).default(1),
});
type State = z.infer<typeof StateSchema>;

type Replay = { status: 'loading'; requestId: string; adapterRound: number; samples: number } | { status: 'done'; result: ReplayResult } | { status: 'error'; adapterRound: number; message: string };

const notices = new Notices();
let state: State = { run: null, round: null, filter: 'all', search: '', exchange: null, replayRound: null, replaySamples: 1 };

const SAMPLE_CHOICES = [1, 8, 16, 32, MAX_REPLAY_SAMPLES];
let summaries: RunSummary[] = [];
let runData: RunData | null = null;
let runError: string | null = null;
const transcripts = new Map<number, Exchange[]>();
const requested = new Set<number>();
let annotations: Annotation[] = [];
const replays = new Map<string, Replay>();
const replayRequests = new Map<string, string>();
let all: Exchange[] = [];
let visible: Exchange[] = [];
let cursor = -1;
/** What the exchange list was last built from; it is rebuilt only when that changes. */
let listSignature = '';

const host = connectHost<State>({ panel: 'stepper', stateSchema: StateSchema, onMessage: handle, onError: (title, message) => notices.error(title, message) });

const app = document.getElementById('app')!;
const runSelect = singleSelect('run', [], '', (value) => switchRun(value));
const roundSelect = singleSelect('round', [], '', (value) => {
  state.round = value === 'all' ? 'all' : Number(value);
  requestRounds();
  refresh();
});
const filterSelect = singleSelect('outcome', [], 'all', (value) => {
  state.filter = value as OutcomeFilter;
  refresh();
});
const search = h('vscode-textfield', { attrs: { placeholder: 'Search seeds, thoughts, attacks, answers', 'aria-label': 'Search' }, dataset: { name: 'search' } }) as HTMLElement & { value: string };
search.addEventListener('input', () => {
  state.search = search.value;
  refresh();
});
const position = h('span', { class: 'position', attrs: { 'aria-live': 'polite' }, id: 'position' });
const prev = button('‹ Previous', () => move(-1), { secondary: true, name: 'previous' });
const next = button('Next ›', () => move(1), { secondary: true, name: 'next' });
const runStatus = h('span', { class: 'run-status' });
const listBody = h('tbody');
const list = h(
  'div',
  { class: 'exchange-list table-wrap', attrs: { role: 'region', 'aria-label': 'Exchanges' } },
  h('table', { class: 'data exchange-table' }, h('thead', null, h('tr', null, ...['exchange', 'outcome', 'attacker', 'defender'].map((t, i) => h('th', { class: i < 2 ? 'text' : '', text: t })))), listBody),
);
const view = h('div', { class: 'exchange-view' });

replaceChildren(
  app,
  h('header', { class: 'panel-header' }, h('h1', { text: 'ABSP Lab — Dialogue Stepper' }), runStatus),
  notices.element,
  h(
    'div',
    { class: 'toolbar' },
    h('label', { class: 'field' }, 'Run', runSelect),
    h('label', { class: 'field' }, 'Round', roundSelect),
    h('label', { class: 'field' }, 'Show', filterSelect),
    h('label', { class: 'field grow' }, search),
  ),
  h(
    'div',
    { class: 'toolbar nav' },
    prev,
    next,
    position,
    h('span', { class: 'muted keys' }, h('kbd', { text: 'j' }), ' / ', h('kbd', { text: 'k' }), ' or ', h('kbd', { text: '↓' }), ' / ', h('kbd', { text: '↑' }), ' to step, ', h('kbd', { text: 'Home' }), ' / ', h('kbd', { text: 'End' }), ' first and last, ', h('kbd', { text: '/' }), ' to search'),
  ),
  legendView(),
  h('div', { class: 'stepper-body' }, list, view),
);
app.removeAttribute('aria-busy');
replaceChildren(view, emptyState('Waiting for the extension to list the runs…', 'loading'));
state = host.savedState() ?? state;
search.value = state.search;
// Capture phase: the keys reach the stepper before a focused control (a select keeps the focus after
// it is used, and would take the arrows for itself).
window.addEventListener('keydown', onKey, { capture: true });
announceReady(host, 'stepper');

function handle(msg: HostMessage): void {
  switch (msg.type) {
    case 'init': {
      setSummaries(msg.runs);
      const usable = summaries.filter((s) => !s.error).map((s) => s.run);
      const wanted = msg.focus?.runs[0] ?? state.run;
      if (msg.focus?.round !== undefined) state.round = msg.focus.round;
      if (msg.focus?.exchange) state.exchange = msg.focus.exchange;
      const run = wanted && summaries.some((s) => s.run === wanted) ? wanted : usable[0] ?? null;
      renderRunSelect(run);
      if (run) switchRun(run, true);
      else replaceChildren(view, emptyState('No runs yet: start one with “ABSP: Start Run”.'));
      return;
    }
    case 'runs':
      setSummaries(msg.runs);
      renderRunSelect(state.run);
      return;
    case 'run-data':
      if (msg.data.run !== state.run) return;
      runData = msg.data;
      runError = null;
      showIssues();
      renderRoundSelect();
      requestRounds();
      refresh();
      return;
    case 'run-append':
      if (msg.run !== state.run || !runData) return;
      runData = applyAppend(runData, msg);
      renderRoundSelect();
      refresh();
      return;
    case 'transcript':
      if (msg.run !== state.run) return;
      transcripts.set(msg.round, msg.exchanges);
      refresh();
      return;
    case 'transcript-append': {
      if (msg.run !== state.run || !runData) return;
      if (!transcripts.has(msg.round)) {
        // A round that had no transcript file when the run was loaded: this append holds all of it.
        // A round that had one but is not loaded yet comes whole when it is requested.
        if (runData.transcriptRounds.includes(msg.round)) return;
        runData = { ...runData, transcriptRounds: [...runData.transcriptRounds, msg.round].sort((a, b) => a - b) };
        transcripts.set(msg.round, msg.exchanges);
        requested.add(msg.round);
        renderRoundSelect();
        refresh();
        return;
      }
      const have = transcripts.get(msg.round)!;
      const ids = new Set(have.map((x) => x.id));
      transcripts.set(msg.round, [...have, ...msg.exchanges.filter((x) => !ids.has(x.id))]);
      refresh();
      return;
    }
    case 'annotations':
      if (msg.run !== state.run) return;
      annotations = msg.annotations;
      refresh();
      return;
    case 'replay-result': {
      const key = replayRequests.get(msg.requestId);
      if (!key) return;
      replayRequests.delete(msg.requestId);
      replays.set(key, { status: 'done', result: msg.result });
      render();
      return;
    }
    case 'error': {
      const key = msg.requestId ? replayRequests.get(msg.requestId) : undefined;
      if (key) {
        const pending = replays.get(key);
        replayRequests.delete(msg.requestId!);
        replays.set(key, { status: 'error', adapterRound: pending?.status === 'loading' ? pending.adapterRound : -1, message: msg.message });
        render();
        return;
      }
      if (msg.run && msg.run === state.run) {
        runError = msg.message;
        runData = null;
        refresh();
        return;
      }
      notices.error('Error', msg.message, { detail: msg.detail });
      return;
    }
    default:
      return;
  }
}

function setSummaries(list: RunSummary[]): void {
  summaries = list;
}

function switchRun(run: string, keepPlace = false): void {
  if (!keepPlace || state.run !== run) {
    state.exchange = keepPlace ? state.exchange : null;
    if (!keepPlace) state.round = null;
  }
  state.run = run;
  runData = null;
  runError = null;
  transcripts.clear();
  requested.clear();
  annotations = [];
  const summary = summaries.find((s) => s.run === run);
  if (summary?.error) runError = summary.error.message;
  else host.post({ type: 'watch-runs', runs: [run] });
  save();
  refresh();
}

function renderRunSelect(run: string | null): void {
  setSelectOptions(runSelect, summaries.map((s) => ({ value: s.run, label: s.error ? `${s.label} (cannot open)` : `${s.label} (${s.mode})` })), run ?? '');
}

function transcriptRounds(): number[] {
  return runData?.transcriptRounds ?? [];
}

function renderRoundSelect(): void {
  const rounds = transcriptRounds();
  if (state.round === null || (state.round !== 'all' && !rounds.includes(state.round))) {
    const total = runData?.rounds.reduce((s, r) => s + r.exchanges, 0) ?? 0;
    state.round = total <= ALL_ROUNDS_LIMIT || rounds.length === 0 ? 'all' : rounds[rounds.length - 1];
  }
  // A round is played by the adapters the previous round saved: say so, as the exchanges do.
  const options: SelectOption[] = [{ value: 'all', label: 'All rounds' }, ...rounds.map((r) => ({ value: String(r), label: r > 0 ? `Round ${r} (round ${r - 1}’s adapters)` : `Round ${r}` }))];
  setSelectOptions(roundSelect, options, String(state.round));
}

function roundsShown(): number[] {
  return state.round === 'all' || state.round === null ? transcriptRounds() : [state.round];
}

function requestRounds(): void {
  if (!state.run || !runData) return;
  for (const r of roundsShown()) {
    if (requested.has(r)) continue;
    requested.add(r);
    host.post({ type: 'request-transcript', run: state.run, round: r });
  }
}

function loadedExchanges(): Exchange[] {
  return roundsShown().flatMap((r) => transcripts.get(r) ?? []);
}

/** Recomputes what is visible, keeps the cursor on the same exchange when it can, and redraws. */
function refresh(): void {
  all = loadedExchanges();
  // The counts are of what each filter would show with the current search.
  const counts = countByFilter(all, annotations, state.search);
  setSelectOptions(filterSelect, FILTERS.map((f) => ({ value: f, label: `${FILTER_LABELS[f]} (${counts[f]})` })), state.filter);
  filterSelect.dataset.counts = JSON.stringify(counts);
  visible = visibleExchanges(all, state.filter, state.search, annotations);
  cursor = keepPosition(visible, state.exchange, all);
  // An exchange from a round still loading (after a reload, say) stays the target until it arrives.
  const targetPending = state.exchange !== null && !all.some((x) => x.id === state.exchange) && roundsShown().some((r) => !transcripts.has(r));
  if (cursor >= 0 && !targetPending) state.exchange = visible[cursor].id;
  save();
  render();
}

function moveTo(index: number): void {
  if (visible.length === 0) return;
  const to = Math.max(0, Math.min(visible.length - 1, index));
  if (to === cursor) return;
  cursor = to;
  state.exchange = visible[cursor].id;
  save();
  render();
}

function move(delta: number): void {
  moveTo(cursor + delta);
}

function pick(id: string): void {
  const at = visible.findIndex((x) => x.id === id);
  if (at >= 0) moveTo(at);
  else {
    // A group member hidden by the filter or the search: show all exchanges to reach it.
    state.filter = 'all';
    state.search = '';
    search.value = '';
    state.exchange = id;
    refresh();
  }
}

function onKey(event: KeyboardEvent): void {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  if (isTypingTarget(event)) {
    if (event.key === 'Escape') (document.activeElement as HTMLElement | null)?.blur();
    return;
  }
  // An open dropdown keeps its own keys; a closed one leaves them to the stepper.
  if (selectTarget(event)?.open) return;
  if (event.key === 'j' || event.key === 'ArrowDown' || event.key === 'ArrowRight') move(1);
  else if (event.key === 'k' || event.key === 'ArrowUp' || event.key === 'ArrowLeft') move(-1);
  else if (event.key === 'Home') moveTo(0);
  else if (event.key === 'End') moveTo(visible.length - 1);
  else if (event.key === '/') search.focus();
  else return;
  event.preventDefault();
  event.stopPropagation();
}

function render(): void {
  runStatus.replaceChildren(...(runData ? [statusBadge(runData.status)] : []));
  prev.disabled = cursor <= 0;
  next.disabled = cursor < 0 || cursor >= visible.length - 1;
  position.textContent = visible.length ? `${cursor + 1} / ${visible.length}` : '0 / 0';
  renderList();
  if (runError) {
    replaceChildren(view, emptyState(`This run cannot be shown: ${runError}`, 'error'));
    return;
  }
  if (!state.run) {
    replaceChildren(view, emptyState('Pick a run.'));
    return;
  }
  if (!runData) {
    replaceChildren(view, emptyState('Loading the run…', 'loading'));
    return;
  }
  const missing = roundsShown().filter((r) => !transcripts.has(r));
  if (transcriptRounds().length === 0) {
    replaceChildren(view, emptyState('No exchanges recorded yet. They appear here as the run plays.'));
    return;
  }
  if (missing.length && loadedExchanges().length === 0) {
    replaceChildren(view, emptyState(`Loading round ${missing.join(', ')}…`, 'loading'));
    return;
  }
  if (cursor < 0) {
    const what = state.filter === 'all' ? 'exchanges' : FILTER_LABELS[state.filter].toLowerCase();
    replaceChildren(view, emptyState(`No ${what}${state.search ? ` matching “${state.search}”` : ''} in ${state.round === 'all' ? 'any round' : `round ${state.round}`}.`));
    return;
  }
  const x = visible[cursor];
  replaceChildren(view, exchangeView(x, state.search), groupView(x, groupOf(x, all), pick), annotationsView(annotations.filter((a) => a.exchange === x.id)), actionsView(x));
}

/**
 * The list of the visible exchanges, with their outcome and rewards; the samples of one GRPO group
 * are banded together. Rebuilt only when the visible exchanges change; moving marks another row.
 */
function renderList(): void {
  const signature = `${state.run}|${visible.map((x) => x.id).join(',')}`;
  if (signature !== listSignature) {
    listSignature = signature;
    let band = 0;
    let lastGroup = '';
    const sizes = new Map<string, number>();
    for (const x of visible) sizes.set(groupKey(x), (sizes.get(groupKey(x)) ?? 0) + 1);
    listBody.replaceChildren(
      ...visible.map((x, i) => {
        const key = groupKey(x);
        if (key !== lastGroup) band += 1;
        const grouped = (sizes.get(key) ?? 1) > 1;
        const tr = h(
          'tr',
          { class: `${grouped ? `grouped band-${band % 2}` : ''}${grouped && key !== lastGroup ? ' group-start' : ''}`, dataset: { exchange: x.id, index: String(i), outcome: outcomeOf(x) } },
          h('td', { class: 'text', text: x.id }),
          h('td', { class: 'text' }, outcomeChip(outcomeOf(x))),
          h('td', { text: signed(x.rewards.attacker) }),
          h('td', { text: signed(x.rewards.defender) }),
        );
        lastGroup = key;
        tr.addEventListener('click', () => moveTo(i));
        return tr;
      }),
    );
  }
  const current = visible[cursor]?.id;
  for (const tr of listBody.querySelectorAll<HTMLElement>('tr.selected')) tr.classList.remove('selected');
  const row = current ? listBody.querySelector<HTMLElement>(`tr[data-index="${cursor}"]`) : null;
  if (row) {
    row.classList.add('selected');
    row.setAttribute('aria-current', 'true');
    row.scrollIntoView({ block: 'nearest' });
  }
  list.hidden = visible.length === 0;
}

function completeRoundsWithDefender(): number[] {
  const summary = summaries.find((s) => s.run === state.run);
  const slots = summary?.adapters ?? {};
  return Object.entries(slots)
    .filter(([, names]) => names.includes('defender') || names.includes('shared'))
    .map(([r]) => Number(r))
    .sort((a, b) => a - b);
}

function actionsView(x: Exchange): HTMLElement {
  const rounds = completeRoundsWithDefender();
  const slot = summaries.find((s) => s.run === state.run)?.adapters?.[String(rounds[rounds.length - 1])]?.includes('defender') ? 'defender' : 'shared adapter';
  const replayRound = state.replayRound !== null && rounds.includes(state.replayRound) ? state.replayRound : rounds[rounds.length - 1] ?? null;
  const roundPick = singleSelect('replay round', rounds.map((r) => ({ value: String(r), label: `${slot} of round ${r}` })), replayRound === null ? '' : String(replayRound), (v) => {
    state.replayRound = Number(v);
    save();
  });
  const samplesPick = singleSelect('replay samples', SAMPLE_CHOICES.map((n) => ({ value: String(n), label: n === 1 ? '1 sample' : `${n} samples` })), String(state.replaySamples), (v) => {
    state.replaySamples = Number(v);
    save();
  });
  const replayButton = button('Replay', () => requestReplay(x, state.replayRound ?? replayRound), { name: 'replay' });
  replayButton.disabled = replayRound === null || replays.get(replayKey(x))?.status === 'loading';
  const played = describeAdapter(x.adapters.defender) ?? 'the defender';
  return h(
    'section',
    { class: 'actions', dataset: { part: 'actions' } },
    h(
      'div',
      { class: 'toolbar' },
      button('Annotate in editor', () => host.post({ type: 'annotate', run: state.run!, round: x.round, exchange: x.id }), { name: 'annotate' }),
      rounds.length
        ? h('span', { class: 'field' }, `Replay the attack (played against the ${played}) against the`, roundPick, samplesPick, replayButton)
        : h('span', { class: 'muted', text: 'Replay needs a complete round with a saved defender: none yet.' }),
    ),
    replayView(x),
  );
}

function replayKey(x: Exchange): string {
  return `${state.run}:${x.id}`;
}

function requestReplay(x: Exchange, adapterRound: number | null): void {
  if (adapterRound === null || !state.run) return;
  const requestId = newRequestId('replay');
  replayRequests.set(requestId, replayKey(x));
  const samples = state.replaySamples;
  replays.set(replayKey(x), { status: 'loading', requestId, adapterRound, samples });
  host.post({ type: 'replay', requestId, run: state.run, round: x.round, exchange: x.id, adapterRound, ...(samples > 1 ? { samples } : {}) });
  render();
}

function replayView(x: Exchange): HTMLElement | null {
  const r = replays.get(replayKey(x));
  if (!r) return null;
  if (r.status === 'loading') {
    return h('div', { class: 'replay loading', attrs: { role: 'status' }, dataset: { replay: 'loading' } }, h('vscode-progress-ring'), ` Replaying ${r.samples > 1 ? `${r.samples} samples ` : ''}against the defender of round ${r.adapterRound} in the engine…`);
  }
  if (r.status === 'error') {
    return h('div', { class: 'replay error notice error', attrs: { role: 'alert' }, dataset: { replay: 'error' } }, h('strong', { text: 'Replay failed: ' }), r.message);
  }
  return h('div', { class: 'replay done', dataset: { replay: 'done' } }, replayResultView(r.result, x));
}

function showIssues(): void {
  const text = runData ? describeRunIssues(runData) : null;
  if (text) notices.warning('The run directory has damaged records', text, { key: 'issues' });
  else notices.clear('issues');
}

function save(): void {
  host.saveState(state);
}
