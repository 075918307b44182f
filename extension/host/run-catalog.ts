/**
 * The runs the editor knows: every run directory in the runs folder, plus run directories the user
 * opened from elsewhere (a run copied from a GPU machine, say). Each is named by its absolute path —
 * the opaque `run` key of the panel protocol — and summarised for the Runs view and the panels. A
 * refresh tells what changed, and which runs changed status (for "run finished" notifications of runs
 * the host did not start itself). Reads only.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunDirError, RunReader, effectiveStatus, listRuns, readRunInfo, roundFolderNumbers, runLayout, savedSlots, type EffectiveStatus, type RunInfo, type RunListing } from '../rundir';
import type { RunSummary } from '../../webview/protocol';
import { Emitter } from './emitter';

export interface CatalogEntry {
  key: string;
  dir: string;
  summary: RunSummary;
  info: RunInfo | null;
  status: EffectiveStatus | null;
}

export interface StatusChange {
  dir: string;
  from: EffectiveStatus | null;
  to: EffectiveStatus | null;
  info: RunInfo | null;
}

export interface CatalogChange {
  entries: CatalogEntry[];
  statusChanges: StatusChange[];
}

export interface CatalogSources {
  runsFolder: string;
  /** Run directories opened from elsewhere. */
  extraRuns: readonly string[];
}

export class RunCatalog {
  private current = new Map<string, CatalogEntry>();
  private stamps = new Map<string, string>();
  private order: string[] = [];
  private readonly changeEmitter = new Emitter<CatalogChange>();
  readonly onDidChange = this.changeEmitter.event;

  constructor(private readonly sources: () => CatalogSources) {}

  entries(): CatalogEntry[] {
    return this.order.map((k) => this.current.get(k)!).filter(Boolean);
  }

  summaries(): RunSummary[] {
    return this.entries().map((e) => e.summary);
  }

  get(key: string): CatalogEntry | undefined {
    return this.current.get(path.resolve(key));
  }

  /** True while any run is live here (the host then refreshes more often). */
  get anyRunning(): boolean {
    return this.entries().some((e) => e.status === 'running');
  }

  /** Reads the runs again; fires onDidChange (and returns the change) when anything differs. */
  refresh(): CatalogChange | null {
    const { runsFolder, extraRuns } = this.sources();
    let listed: RunListing[] = [];
    try {
      listed = listRuns(runsFolder);
    } catch {
      listed = [];
    }
    const seen = new Set(listed.map((l) => path.resolve(l.dir)));
    for (const extra of extraRuns) {
      const dir = path.resolve(extra);
      if (seen.has(dir)) continue;
      seen.add(dir);
      listed.push(listExtra(dir));
    }
    const next = new Map<string, CatalogEntry>();
    const nextStamps = new Map<string, string>();
    const statusChanges: StatusChange[] = [];
    let changed = listed.length !== this.order.length;
    const order: string[] = [];
    for (const l of listed) {
      const dir = path.resolve(l.dir);
      order.push(dir);
      const stamp = stampOf(dir, l);
      const previous = this.current.get(dir);
      const entry = previous && this.stamps.get(dir) === stamp ? previous : summarise(dir, l);
      if (entry !== previous) changed = true;
      next.set(dir, entry);
      nextStamps.set(dir, stamp);
      if (previous && previous.status !== entry.status) statusChanges.push({ dir, from: previous.status, to: entry.status, info: entry.info });
    }
    if (!changed && order.some((k, i) => this.order[i] !== k)) changed = true;
    this.current = next;
    this.stamps = nextStamps;
    this.order = order;
    if (!changed) return null;
    const change = { entries: this.entries(), statusChanges };
    this.changeEmitter.fire(change);
    return change;
  }

  dispose(): void {
    this.changeEmitter.dispose();
  }
}

function listExtra(dir: string): RunListing {
  try {
    const info = readRunInfo(dir);
    return { dir, info, status: effectiveStatus(info) };
  } catch (e) {
    if (e instanceof RunDirError) return { dir, error: { kind: e.kind, message: e.message } };
    return { dir, error: { kind: 'unreadable', message: (e as Error).message } };
  }
}

/** What a summary depends on: run.json (status, rounds), the live status, and the round folders. */
function stampOf(dir: string, l: RunListing): string {
  const layout = runLayout(dir);
  let runJson = 'absent';
  try {
    const st = fs.statSync(layout.runJson);
    runJson = `${st.size}:${st.mtimeMs}`;
  } catch {
    /* absent */
  }
  const rounds = roundFolderNumbers(dir)
    .map((n) => `${n}${fs.existsSync(layout.roundJson(n)) ? '+' : ''}`)
    .join(',');
  return `${runJson}|${l.status ?? l.error?.kind}|${rounds}`;
}

/** A run's row for the panels and the Runs view; a run that cannot be opened carries the reason. */
export function summarise(dir: string, listing?: RunListing): CatalogEntry {
  const key = path.resolve(dir);
  const label = path.basename(key);
  const failed = (kind: NonNullable<RunSummary['error']>['kind'], message: string): CatalogEntry => ({
    key,
    dir: key,
    info: null,
    status: null,
    summary: { run: key, label, mode: null, status: null, rounds_completed: null, rounds_planned: null, error: { kind, message } },
  });
  if (listing?.error) return failed(listing.error.kind, listing.error.message);
  try {
    const reader = RunReader.open(key);
    const info = reader.info;
    const status = reader.status();
    const rounds = reader.rounds();
    const zero = rounds.find((r) => r.round === 0);
    const last = rounds[rounds.length - 1];
    return {
      key,
      dir: key,
      info,
      status,
      summary: {
        run: key,
        label,
        id: info.id,
        name: info.name,
        created: info.created,
        before: zero ? { round: 0, metrics: zero.metrics } : null,
        after: last ? { round: last.round, metrics: last.metrics } : null,
        mode: info.mode,
        status,
        rounds_completed: info.rounds_completed,
        rounds_planned: info.rounds_planned,
        adapters: adapterSlots(key, reader, rounds),
        error: null,
      },
    };
  } catch (e) {
    if (e instanceof RunDirError) return failed(e.kind, e.message);
    return failed('unreadable', (e as Error).message);
  }
}

/** The LoRA adapters saved in each complete round, by slot name. */
export function adapterSlots(dir: string, reader: RunReader, rounds = reader.rounds()): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const r of rounds) {
    out[String(r.round)] = savedSlots(dir, r.round)
      .filter((s) => s.kind === 'lora')
      .map((s) => s.slot)
      .sort();
  }
  return out;
}
