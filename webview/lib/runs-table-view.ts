/**
 * The runs table at the top of the dashboard (like DVC's experiments table): a checkbox per row — the
 * checked rows are the ones the charts overlay —, the run's colour, its name · start time, mode, status
 * and rounds, and before → after of the headline round metrics. Column headers sort; the sort and the
 * checks are the panel's state.
 */
import { h } from './dom';
import { RUNS_TABLE_METRICS, formatCell, formatInterval, formatMetric, sortRows, trend, type MetricCell, type RunsTableRow, type Sort, type SortKey } from './runs-table';
import { statusBadge, type Status } from './status-badge';

export interface RunsTableOptions {
  rows: readonly RunsTableRow[];
  selected: ReadonlySet<string>;
  sort: Sort | null;
  /** The run the panel was opened on, marked in the table. */
  focused: string | null;
  colourOf: (run: string) => string;
  liveStatus: (run: string) => Status | null;
  onSelect: (selected: string[]) => void;
  onSort: (key: SortKey) => void;
}

const COLUMNS: { key: SortKey; title: string; text?: boolean; hint?: string }[] = [
  { key: 'label', title: 'run', text: true },
  { key: 'mode', title: 'mode', text: true },
  { key: 'status', title: 'status', text: true },
  { key: 'rounds', title: 'rounds', hint: 'Complete rounds of a run; seeds completed of a sweep' },
  ...RUNS_TABLE_METRICS.map((m) => ({ key: m.key, title: m.short, hint: `${m.label}: round 0 → last complete round (${m.better} is better)` })),
];

export function runsTableView(o: RunsTableOptions): HTMLElement {
  if (o.rows.length === 0) return h('p', { class: 'muted', text: 'No runs found.' });
  const rows = sortRows(o.rows, o.sort);
  const checked = new Set(o.selected);
  const head = h(
    'tr',
    null,
    h('th', { class: 'pick', attrs: { scope: 'col' } }, h('span', { class: 'sr-only', text: 'overlay' })),
    ...COLUMNS.map((c) => {
      const dir = o.sort?.key === c.key ? o.sort.dir : null;
      const arrow = dir === 'asc' ? ' ▲' : dir === 'desc' ? ' ▼' : '';
      return h(
        'th',
        { class: c.text ? 'text' : '', attrs: { scope: 'col', 'aria-sort': dir === 'asc' ? 'ascending' : dir === 'desc' ? 'descending' : 'none' }, dataset: { sort: c.key } },
        h('button', { class: 'sort', text: `${c.title}${arrow}`, title: c.hint ?? `Sort by ${c.title}`, on: { click: () => o.onSort(c.key) } }),
      );
    }),
  );
  const body = rows.map((r) => {
    const box = h('vscode-checkbox', { attrs: { checked: checked.has(r.key), disabled: r.error !== null, 'aria-label': `overlay ${r.label}` }, dataset: { run: r.key } }) as HTMLElement & { checked: boolean };
    box.addEventListener('change', () => {
      if (box.checked) checked.add(r.key);
      else checked.delete(r.key);
      // The table's order is the order runs are drawn in; keep the host's order for the charts.
      o.onSelect(o.rows.map((x) => x.key).filter((k) => checked.has(k)));
    });
    const swatch = h('span', { class: 'swatch', attrs: { 'aria-hidden': 'true' } });
    if (!r.error) swatch.style.background = o.colourOf(r.key);
    const rounds = r.sweep
      ? `${r.sweep.seeds} / ${r.sweep.planned} seeds`
      : r.roundsCompleted === null
        ? '—'
        : `${r.roundsCompleted}${r.roundsPlanned ? ` / ${r.roundsPlanned}` : ''}`;
    const tr = h(
      'tr',
      { class: `run-row${r.error ? ' has-error' : ''}${checked.has(r.key) ? ' checked' : ''}${o.focused === r.key ? ' focused' : ''}`, dataset: { run: r.key, kind: r.kind } },
      h('td', { class: 'pick' }, swatch, box),
      h('td', { class: 'text run-label', text: r.label, title: r.sweep ? `sweep of seeds: ${r.sweep.key}` : r.key }, r.sweep ? h('span', { class: 'badge quiet sweep-badge', text: 'sweep' }) : null),
      h('td', { class: 'text' }, r.mode ? h('span', { class: 'badge quiet', text: r.mode }) : null),
      h('td', { class: 'text' }, r.error ? h('span', { class: 'badge bad', text: r.error.kind, title: r.error.message }) : statusBadge(o.liveStatus(r.key) ?? (r.status as Status))),
      h('td', { class: 'rounds', text: rounds, title: r.sweep ? `${r.sweep.seeds} of the ${r.sweep.planned} seeds' runs of ${r.sweep.mode} completed (${r.sweep.started} started); the medians are over the completed ones` : undefined }),
      ...(r.error
        ? [h('td', { class: 'text run-error', attrs: { colspan: RUNS_TABLE_METRICS.length }, text: r.error.message })]
        : RUNS_TABLE_METRICS.map((m) => {
            const c = r.cells[m.key];
            const t = c ? trend(m, c) : null;
            return h('td', {
              class: `metric${t ? ` ${t}` : ''}`,
              text: c ? formatCell(m.key, c) : '—',
              title: cellTitle(m.label, m.key, c, t),
              dataset: { metric: m.key, ...(t ? { trend: t } : {}) },
            });
          })),
    );
    // A click anywhere on the row (but on its checkbox, which toggles itself) toggles it too.
    tr.addEventListener('click', (e) => {
      if (r.error || e.composedPath().includes(box)) return;
      box.checked = !box.checked;
      box.dispatchEvent(new Event('change'));
    });
    return tr;
  });
  return h('div', { class: 'table-wrap runs-table-wrap' }, h('table', { class: 'data runs-table' }, h('thead', null, head), h('tbody', null, ...body)));
}

function cellTitle(label: string, key: string, c: MetricCell | undefined, t: string | null): string {
  if (!c || c.after === null) return `${label}: not measured`;
  const before = c.before !== null ? `, ${formatMetric(key, c.before)} before training` : '';
  const verdict = t ? ` (${t})` : '';
  if (c.n !== undefined) {
    const interval = c.interval ? ` ${formatInterval(key, c.interval)} (95% bootstrap interval)` : '';
    return `${label}: median over ${c.n} seed${c.n === 1 ? '' : 's'} after the last round ${formatMetric(key, c.after)}${interval}${before}${verdict}`;
  }
  return `${label}: ${formatMetric(key, c.after)} after round ${c.afterRound}${before}${verdict}`;
}
