/**
 * What a panel holds about each run it shows, and how host messages change it. Pure functions, so
 * they are tested without a browser.
 */
import type { HostMessage, RunData } from '../protocol';

type RunAppend = Extract<HostMessage, { type: 'run-append' }>;

/** Applies a live update: new records are appended, run.json and crossplay replaced when sent. */
export function applyAppend(data: RunData, msg: RunAppend): RunData {
  const rounds = new Map(data.rounds.map((r) => [r.round, r]));
  for (const r of msg.rounds) rounds.set(r.round, r);
  return {
    ...data,
    info: msg.info ?? data.info,
    status: msg.status,
    rounds: [...rounds.values()].sort((a, b) => a.round - b.round),
    events: msg.events.length ? [...data.events, ...msg.events] : data.events,
    nashgap: msg.nashgap.length ? [...data.nashgap, ...msg.nashgap] : data.nashgap,
    crossplay: msg.crossplay === undefined ? data.crossplay : msg.crossplay,
    evals: msg.evals ?? data.evals,
  };
}

/** A short account of the damage the reader worked around, per file, for a warning notice. */
export function describeRunIssues(data: RunData): string | null {
  if (data.issues.length === 0) return null;
  const byFile = new Map<string, number>();
  for (const i of data.issues) {
    const name = i.file.split(/[\\/]/).slice(-2).join('/');
    byFile.set(name, (byFile.get(name) ?? 0) + 1);
  }
  const parts = [...byFile].map(([f, n]) => `${n} in ${f}`);
  const first = data.issues[0];
  return `${data.issues.length} problem${data.issues.length === 1 ? '' : 's'} skipped (${parts.join(', ')}). First: ${first.file}${first.line ? `:${first.line}` : ''}: ${first.problem}`;
}
