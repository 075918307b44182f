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
import type { RunSummary, SweepOverview } from '../../webview/protocol';
import { Emitter } from './emitter';
import { runLabels } from './run-labels';
import { describeProgress, type RunProgress } from './run-progress';
import { labelSweeps, listSweepDirs, summariseSweep, sweepStamp } from './sweep-overview';
import { isSweepDir } from '../rundir/sweep';

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
  private sweepList: SweepOverview[] = [];
  private sweepStamps = new Map<string, { stamp: string; overview: SweepOverview }>();
  private readonly changeEmitter = new Emitter<CatalogChange>();
  readonly onDidChange = this.changeEmitter.event;

  constructor(private readonly sources: () => CatalogSources) {}

  entries(): CatalogEntry[] {
    return this.order.map((k) => this.current.get(k)!).filter(Boolean);
  }

  summaries(): RunSummary[] {
    return this.entries().map((e) => e.summary);
  }

  /** The sweeps of seeds in the runs folder, newest first, with distinct labels. */
  sweeps(): SweepOverview[] {
    return this.sweepList;
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
    // A sweep's runs are runs too (to step through a seed's dialogues): listed after the runs folder's own.
    const sweepDirs = listSweepDirs(runsFolder);
    const sweepParents = new Set(sweepDirs);
    for (const sweepDir of sweepDirs) {
      try {
        listed.push(...listRuns(sweepDir));
      } catch {
        /* an unreadable sweep says why in its overview */
      }
    }
    const seen = new Set(listed.map((l) => path.resolve(l.dir)));
    for (const extra of extraRuns) {
      const dir = path.resolve(extra);
      if (seen.has(dir)) continue;
      seen.add(dir);
      listed.push(listExtra(dir));
      if (isSweepDir(path.dirname(dir))) sweepParents.add(path.dirname(dir));
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
    // Labels depend on the other runs (two runs of one config are told apart by their start time).
    for (const labelled of withRunLabels(order.map((k) => next.get(k)!), sweepParents)) {
      if (labelled !== next.get(labelled.dir)) {
        next.set(labelled.dir, labelled);
        changed = true;
      }
    }
    this.current = next;
    this.stamps = nextStamps;
    this.order = order;
    if (this.refreshSweeps(sweepDirs)) changed = true;
    if (!changed) return null;
    const change = { entries: this.entries(), statusChanges };
    this.changeEmitter.fire(change);
    return change;
  }

  dispose(): void {
    this.changeEmitter.dispose();
  }

  /** Reads the sweeps again (only those whose files changed); true when the list differs. */
  private refreshSweeps(sweepDirs: readonly string[]): boolean {
    const next = new Map<string, { stamp: string; overview: SweepOverview }>();
    let changed = false;
    for (const dir of sweepDirs) {
      const stamp = sweepStamp(dir);
      const previous = this.sweepStamps.get(dir);
      if (previous && previous.stamp === stamp) next.set(dir, previous);
      else {
        next.set(dir, { stamp, overview: summariseSweep(dir) });
        changed = true;
      }
    }
    if (next.size !== this.sweepStamps.size || [...next.keys()].some((k, i) => [...this.sweepStamps.keys()][i] !== k)) changed = true;
    this.sweepStamps = next;
    if (!changed) return false;
    this.sweepList = labelSweeps([...next.values()].map((v) => v.overview));
    return true;
  }
}

/**
 * The entries with their display labels, "name · start time" (run-labels.ts), distinct among them; an
 * entry whose label is already right is returned as it is. Runs that cannot be opened keep their
 * folder name.
 */
export function withRunLabels(entries: readonly CatalogEntry[], sweepDirs: ReadonlySet<string> = new Set()): CatalogEntry[] {
  const readable = entries.filter((e) => e.info);
  const labels = runLabels(readable.map((e) => ({ run: e.dir, name: nameOf(e, sweepDirs), created: e.info!.created })));
  return entries.map((e) => {
    const label = labels.get(e.dir) ?? path.basename(e.dir);
    return e.summary.label === label ? e : { ...e, summary: { ...e.summary, label } };
  });
}

/** A run's name in labels; a run inside one of `sweepDirs` adds its folder there ("seed-3-bipolicy"). */
function nameOf(e: CatalogEntry, sweepDirs: ReadonlySet<string>): string {
  const name = e.info!.name || path.basename(e.dir);
  return sweepDirs.has(path.dirname(e.dir)) ? `${name} · ${path.basename(e.dir)}` : name;
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

/**
 * The context keys that decide where the commands appear (package.json `when` clauses): Stop only
 * while a run is running, Resume only when one can be resumed, and so on, so that the palette never
 * offers a command that would answer "no run fits".
 */
export const CONTEXT_KEYS = ['abspLab.hasRuns', 'abspLab.hasRunningRun', 'abspLab.hasResumableRun', 'abspLab.hasCompleteRound', 'abspLab.hasAnnotations'] as const;
export type ContextKey = (typeof CONTEXT_KEYS)[number];

export function catalogContext(entries: readonly CatalogEntry[], annotatedRuns: number, jobRunning: boolean): Record<ContextKey, boolean> {
  const readable = entries.filter((e) => e.info);
  return {
    'abspLab.hasRuns': readable.length > 0,
    'abspLab.hasRunningRun': jobRunning || readable.some((e) => e.status === 'running'),
    'abspLab.hasResumableRun': readable.some((e) => e.status !== 'running' && e.status !== 'completed'),
    'abspLab.hasCompleteRound': readable.some((e) => e.status !== 'running' && (e.info?.rounds_completed ?? 0) > 0),
    'abspLab.hasAnnotations': annotatedRuns > 0,
  };
}

/**
 * What a run is doing now, read from its directory (for a run this window did not start, and for the
 * question Stop asks): its last step, its complete rounds, whether this attempt is a resume.
 */
export function readRunProgress(dir: string): { progress: RunProgress; stepsPerRound: number | null } {
  const snap = RunReader.open(dir).load();
  const config = (snap.config ?? {}) as { steps_per_round?: unknown; rounds?: unknown; evaluation?: { nash_gap?: unknown; crossplay?: unknown } };
  const stepsPerRound = typeof config.steps_per_round === 'number' ? config.steps_per_round : null;
  let lastStep: { round: number; step: number; asr: number | null } | null = null;
  let resumed = false;
  let started = false;
  for (const e of snap.events) {
    if (e.type === 'step') lastStep = { round: e.round, step: e.step, asr: e.metrics.asr ?? null };
    if (e.type === 'start') started = true;
    if (e.type === 'resume' && e.attempt === snap.info.attempt) {
      started = true;
      resumed = true;
    }
  }
  const progress = describeProgress({
    hasRunDir: true,
    started,
    resumed,
    roundsPlanned: typeof config.rounds === 'number' ? config.rounds : snap.info.rounds_planned,
    stepsPerRound,
    measures: config.evaluation?.nash_gap !== false,
    crossplay: config.evaluation?.crossplay !== false,
    roundsComplete: snap.rounds.map((r) => r.round),
    lastStep,
  });
  return { progress, stepsPerRound };
}
