/** The list of runs with a checkbox each, its colour in the charts, its mode and its status. */
import type { RunSummary } from '../protocol';
import { h } from './dom';

type Status = RunSummary['status'];

export function statusBadge(status: Status): HTMLElement {
  const kind = status === 'completed' ? 'good' : status === 'failed' || status === 'interrupted' ? 'bad' : status === 'running' ? 'warn' : 'quiet';
  return h('span', { class: `badge ${kind}`, text: status ?? 'unknown', dataset: { status: status ?? 'unknown' } });
}

export function runPicker(
  runs: readonly RunSummary[],
  selected: ReadonlySet<string>,
  colourOf: (run: string) => string,
  onChange: (selected: string[]) => void,
  liveStatus: (run: string) => Status | null,
): HTMLElement {
  const boxes: { run: string; box: HTMLElement & { checked: boolean } }[] = [];
  const rows = runs.map((s) => {
    const box = h('vscode-checkbox', { attrs: { checked: selected.has(s.run), disabled: s.error !== null, label: s.label }, dataset: { run: s.run } }) as HTMLElement & { checked: boolean };
    box.addEventListener('change', () => onChange(boxes.filter((b) => b.box.checked).map((b) => b.run)));
    boxes.push({ run: s.run, box });
    const swatch = h('span', { class: 'swatch', attrs: { 'aria-hidden': 'true' } });
    swatch.style.background = colourOf(s.run);
    return h(
      'li',
      { class: s.error ? 'run-row has-error' : 'run-row', dataset: { run: s.run } },
      swatch,
      box,
      s.mode ? h('span', { class: 'badge quiet', text: s.mode }) : null,
      s.error ? h('span', { class: 'badge bad', text: s.error.kind, title: s.error.message }) : statusBadge(liveStatus(s.run) ?? s.status),
      s.rounds_completed !== null ? h('span', { class: 'muted', text: `round ${s.rounds_completed}${s.rounds_planned ? ` of ${s.rounds_planned}` : ''}` }) : null,
      s.error ? h('span', { class: 'run-error', text: s.error.message }) : null,
    );
  });
  if (rows.length === 0) return h('p', { class: 'muted', text: 'No runs found.' });
  return h('ul', { class: 'run-list' }, ...rows);
}
