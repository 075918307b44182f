/** A run's status as a badge: completed (good), failed or interrupted (bad), running (busy), others quiet. */
import type { RunSummary } from '../protocol';
import { h } from './dom';

export type Status = RunSummary['status'];

export function statusBadge(status: Status): HTMLElement {
  const kind = status === 'completed' ? 'good' : status === 'failed' || status === 'interrupted' ? 'bad' : status === 'running' ? 'warn' : 'quiet';
  return h('span', { class: `badge ${kind}`, text: status ?? 'unknown', dataset: { status: status ?? 'unknown' } });
}
