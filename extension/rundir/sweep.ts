/**
 * A sweep (docs/run-directory.md, "Sweeps"): one experiment run once per seed, for its method and
 * each baseline, one ordinary run directory each, grouped in one folder with a small manifest
 * (`sweep.json`). The trainer writes it through `SweepWriter`; everything that shows a sweep reads it
 * through `SweepReader`: its runs, the comparison across seeds (`summary()`, the same object the
 * trainer writes as `summary.json`) and per-round curves as a median with a 95% interval band
 * (`curves()`).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bootstrapMedian, pairedComparison, type MedianInterval } from '../util/stats';
import { writeJsonAtomic } from '../util/atomic';
import { lstatOrNull, openRegular, UnsafeFileError } from '../util/safe-fs';
import { newFolderId, sweepLayout, sweepRunId, type SweepLayout } from './layout';
import { checkTrainer, startTokenField } from './liveness';
import { DERIVED_METRICS, SWEEP_METRICS } from './metrics';
import { RunDirError, RunReader } from './reader';
import {
  ConfigDocumentSchema,
  SWEEP_FORMAT,
  SWEEP_FORMAT_VERSION,
  SweepInfoSchema,
  SweepSummarySchema,
  describeIssues,
  type ConfigDocument,
  type Crossplay,
  type MedianIntervalRecord,
  type Mode,
  type RoundInfo,
  type RunStatus,
  type SweepInfo,
  type SweepRun,
  type SweepSummary,
} from './schema';

/** The largest sweep.json or summary.json read: a manifest of 100,000 runs is well under it. */
const MAX_DOCUMENT_BYTES = 32 * 2 ** 20;

export class SweepError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = 'SweepError';
  }
}

/** True when the folder holds a sweep manifest (whether or not it can be read). */
export function isSweepDir(dir: string): boolean {
  return fs.existsSync(sweepLayout(dir).sweepJson);
}

/** The runs a sweep plans: seed-major, so a partial sweep already has paired runs. */
export function plannedRuns(seeds: readonly number[], modes: readonly Mode[]): SweepRun[] {
  return seeds.flatMap((seed) => modes.map((mode) => ({ seed, mode, id: sweepRunId(seed, mode) })));
}

// ---------------------------------------------------------------------------------------------------
// Writing

export interface NewSweep {
  id?: string;
  name: string;
  seeds: number[];
  /** The method first, then its baselines. */
  modes: Mode[];
  /** The base config every run shares (each run's config.json adds its seed and mode). */
  config: ConfigDocument;
}

export class SweepWriter {
  readonly layout: SweepLayout;

  private constructor(
    readonly dir: string,
    private current: SweepInfo,
  ) {
    this.layout = sweepLayout(dir);
  }

  /** Creates `<runsFolder>/<id>/` with sweep.json (status running) and the base config. */
  static create(runsFolder: string, init: NewSweep, now = new Date()): SweepWriter {
    const id = init.id ?? newFolderId(now, `${init.name}-sweep`, (taken) => lstatOrNull(path.join(runsFolder, taken)) !== null);
    const info = check({
      format: SWEEP_FORMAT,
      version: SWEEP_FORMAT_VERSION,
      id,
      name: init.name,
      created: now.toISOString(),
      updated: now.toISOString(),
      status: 'running',
      reason: null,
      pid: process.pid,
      host: os.hostname(),
      ...startTokenField(),
      seeds: init.seeds,
      modes: init.modes,
      runs: plannedRuns(init.seeds, init.modes),
    });
    if (new Set(init.seeds).size !== init.seeds.length) throw new SweepError(id, `the seeds of a sweep must differ: ${init.seeds.join(', ')}`);
    const dir = path.join(runsFolder, id);
    const layout = sweepLayout(dir);
    if (fs.existsSync(layout.sweepJson)) throw new SweepError(layout.sweepJson, `${dir} already holds a sweep; resume it with absp run --resume ${dir}`);
    fs.mkdirSync(runsFolder, { recursive: true });
    try {
      // Not recursive: of two processes creating the same sweep, exactly one gets the folder.
      fs.mkdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new SweepError(dir, `${dir} already exists; choose another sweep name or remove the folder`);
      throw e;
    }
    writeJsonAtomic(layout.config, init.config);
    writeJsonAtomic(layout.sweepJson, info);
    return new SweepWriter(dir, info);
  }

  /** Takes over an existing sweep (to resume it): status running again, this process's pid. */
  static resume(dir: string): SweepWriter {
    const info = readSweepInfo(dir);
    if (info.status === 'running' && info.pid !== process.pid && checkTrainer(info).state === 'alive') {
      // Two processes running one sweep would train the same seed twice into one run directory.
      throw new SweepError(sweepLayout(dir).sweepJson, `${dir} is still being run by process ${info.pid}; stop it before resuming`);
    }
    const w = new SweepWriter(path.resolve(dir), info);
    w.update({ status: 'running', reason: null, pid: process.pid, host: os.hostname(), ...startTokenField() });
    return w;
  }

  get info(): SweepInfo {
    return this.current;
  }

  /** The folder of one planned run. */
  runDir(run: SweepRun): string {
    return this.layout.run(run.id);
  }

  setStatus(status: RunStatus, reason: string | null = null): void {
    this.update({ status, reason });
  }

  writeSummary(summary: SweepSummary): void {
    writeJsonAtomic(this.layout.summary, SweepSummarySchema.parse(summary));
  }

  private update(patch: Partial<SweepInfo>): void {
    this.current = check({ ...this.current, ...patch, updated: new Date().toISOString() });
    writeJsonAtomic(this.layout.sweepJson, this.current);
  }
}

function check(value: unknown): SweepInfo {
  const parsed = SweepInfoSchema.safeParse(value);
  if (!parsed.success) throw new SweepError('sweep.json', `invalid sweep manifest: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------------
// Reading

/** One planned run as a reader finds it: absent (not started), unreadable, or a run with its data. */
export interface SweepRunState extends SweepRun {
  dir: string;
  /** 'absent' before the run started; otherwise its recorded status ('error' if it cannot be read). */
  status: RunStatus | 'absent' | 'error';
  error?: string;
  rounds: RoundInfo[];
  crossplay: Crossplay | null;
}

/** A metric's curve over rounds for one mode: per round, the median over seeds and its interval. */
export interface SweepCurve {
  mode: Mode;
  points: ({ round: number } & MedianInterval)[];
}

export class SweepReader {
  readonly layout: SweepLayout;

  private constructor(
    readonly dir: string,
    readonly info: SweepInfo,
  ) {
    this.layout = sweepLayout(dir);
  }

  /** Opens a sweep folder; throws SweepError (naming the file) when it is not one or is damaged. */
  static open(dir: string): SweepReader {
    const abs = path.resolve(dir);
    return new SweepReader(abs, readSweepInfo(abs));
  }

  /** The base config the runs share, or null if it is missing or damaged. */
  config(): ConfigDocument | null {
    const raw = readBoundedJson(this.layout.config);
    if (raw === undefined) return null;
    const parsed = ConfigDocumentSchema.safeParse(raw);
    return parsed.success ? parsed.data : null;
  }

  /** Every planned run with what its directory holds now (a live sweep: call again to refresh). */
  runs(): SweepRunState[] {
    return this.info.runs.map((run) => {
      const dir = this.layout.run(run.id);
      if (!fs.existsSync(dir)) return { ...run, dir, status: 'absent', rounds: [], crossplay: null };
      try {
        const reader = RunReader.open(dir);
        return { ...run, dir, status: reader.info.status, rounds: reader.rounds(), crossplay: reader.crossplay() };
      } catch (e) {
        if (!(e instanceof RunDirError)) throw e;
        return { ...run, dir, status: 'error', error: e.message, rounds: [], crossplay: null };
      }
    });
  }

  /** The comparison across seeds, computed from the runs as they are now. */
  summary(now = new Date()): SweepSummary {
    return summarizeSweep(this.info, this.runs(), now);
  }

  /** The summary the trainer wrote when the sweep ended, or null. */
  writtenSummary(): SweepSummary | null {
    const raw = readBoundedJson(this.layout.summary);
    if (raw === undefined) return null;
    const parsed = SweepSummarySchema.safeParse(raw);
    return parsed.success ? parsed.data : null;
  }

  /**
   * A metric over rounds, per mode: the median over the seeds that reached each round, with its 95%
   * bootstrap interval (the dashboard draws the median as a line and the interval as a band).
   */
  curves(metric: string, runs: readonly SweepRunState[] = this.runs()): SweepCurve[] {
    return this.info.modes.map((mode) => {
      const byRound = new Map<number, number[]>();
      for (const r of runs.filter((x) => x.mode === mode)) {
        for (const round of r.rounds) {
          const v = round.metrics[metric];
          if (typeof v !== 'number') continue;
          byRound.set(round.round, [...(byRound.get(round.round) ?? []), v]);
        }
      }
      const points = [...byRound.entries()].sort((a, b) => a[0] - b[0]).map(([round, values]) => ({ round, ...bootstrapMedian(values) }));
      return { mode, points };
    });
  }
}

/** Reads and checks sweep.json, with the error a user needs when it cannot be used. */
export function readSweepInfo(dir: string): SweepInfo {
  const file = sweepLayout(dir).sweepJson;
  let raw: unknown;
  try {
    raw = readBoundedJson(file);
  } catch (e) {
    throw new SweepError(file, `${file}: ${(e as Error).message}`);
  }
  if (raw === undefined) throw new SweepError(file, `${dir} is not a sweep: it has no sweep.json`);
  const obj = (typeof raw === 'object' && raw !== null ? raw : {}) as { format?: unknown; version?: unknown };
  if (obj.format !== SWEEP_FORMAT) throw new SweepError(file, `${file} is not an ABSP sweep manifest: its "format" is ${JSON.stringify(obj.format)}, expected "${SWEEP_FORMAT}"`);
  if (typeof obj.version === 'number' && obj.version > SWEEP_FORMAT_VERSION) {
    throw new SweepError(file, `${file} has format version ${obj.version}, newer than the version ${SWEEP_FORMAT_VERSION} this ABSP Lab reads; update ABSP Lab to open this sweep`);
  }
  const parsed = SweepInfoSchema.safeParse(raw);
  if (!parsed.success) throw new SweepError(file, `${file} is corrupt: ${describeIssues(parsed.error)}`);
  const ids = new Set<string>();
  for (const r of parsed.data.runs) {
    if (ids.has(r.id)) throw new SweepError(file, `${file} is corrupt: run ${r.id} is listed twice`);
    ids.add(r.id);
  }
  return parsed.data;
}

/** A JSON document of bounded size: undefined when absent; throws when unreadable, too large or not JSON. */
function readBoundedJson(file: string): unknown {
  let fd: number;
  try {
    // A sweep folder may be someone else's: no link followed, no FIFO blocking the reader (safe-fs.ts).
    fd = openRegular(file, 'read');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (e instanceof UnsafeFileError) throw new Error(`cannot be read: it ${e.problem}`);
    throw new Error(`cannot be read (${(e as Error).message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size > MAX_DOCUMENT_BYTES) throw new Error(`is ${size} bytes, more than the ${MAX_DOCUMENT_BYTES} a sweep document may have`);
    const text = fs.readFileSync(fd, 'utf8');
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Error(`is not valid JSON (${(e as Error).message})`);
    }
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------
// The comparison

type Metrics = Record<string, number | null>;

/** A run's metrics before training (round 0) and after (its last complete round), with the derived ones. */
export function runEndpoints(rounds: readonly RoundInfo[], crossplay: Crossplay | null): { before: Metrics; after: Metrics } {
  const first = rounds.find((r) => r.round === 0)?.metrics ?? {};
  const last = rounds.length ? rounds[rounds.length - 1].metrics : {};
  const gap = (m: Metrics) => (typeof m['asr/best_response'] === 'number' && typeof m['asr/trained_attacker'] === 'number' ? m['asr/best_response'] - m['asr/trained_attacker'] : null);
  const before: Metrics = { ...first, self_consistency_gap: gap(first) };
  const after: Metrics = { ...last, self_consistency_gap: gap(last) };
  if (crossplay && crossplay.asr.length > 1) {
    // Rows and columns run from the initial player (base or round 0) to the last round's.
    const a = crossplay.asr;
    const lastA = a.length - 1;
    const lastD = a[0].length - 1;
    const cell = (i: number, j: number) => a[i]?.[j] ?? null;
    const diff = (x: number | null, y: number | null) => (x === null || y === null ? null : x - y);
    after['crossplay/later_attacker_gain'] = diff(cell(lastA, 0), cell(0, 0));
    after['crossplay/later_defender_gain'] = diff(cell(0, 0), cell(0, lastD));
  }
  return { before, after };
}

const record = (m: MedianInterval): MedianIntervalRecord => {
  const n = (x: number) => (Number.isFinite(x) ? x : null);
  return { median: n(m.median), low: n(m.low), high: n(m.high), n: m.n };
};
const value = (m: Metrics, key: string): number => (typeof m[key] === 'number' ? (m[key] as number) : NaN);

/**
 * The comparison of a sweep: per mode, over its completed runs, the median and 95% bootstrap interval
 * of each metric before training, after, and of the change; and the main mode against each baseline
 * seed by seed (median difference with its interval, and wins).
 */
export function summarizeSweep(info: SweepInfo, runs: readonly SweepRunState[], now = new Date()): SweepSummary {
  const done = runs.filter((r) => r.status === 'completed');
  const ends = new Map(done.map((r) => [r.id, runEndpoints(r.rounds, r.crossplay)]));
  const modes = info.modes.map((mode) => {
    const mine = done.filter((r) => r.mode === mode);
    const across = (pick: (e: { before: Metrics; after: Metrics }, key: string) => number) =>
      Object.fromEntries(SWEEP_METRICS.map((m) => [m.key, record(bootstrapMedian(mine.map((r) => pick(ends.get(r.id)!, m.key))))]));
    const halved = mine.filter((r) => {
      const e = ends.get(r.id)!;
      return value(e.after, 'asr/best_response') <= 0.5 * value(e.before, 'asr/best_response');
    }).length;
    return {
      mode,
      seeds: mine.map((r) => r.seed),
      before: across((e, k) => value(e.before, k)),
      after: across((e, k) => value(e.after, k)),
      change: across((e, k) => value(e.after, k) - value(e.before, k)),
      weak_spot_halved: halved,
    };
  });
  const [main, ...baselines] = info.modes;
  const paired = baselines.flatMap((b) =>
    SWEEP_METRICS.filter((m) => !DERIVED_METRICS.includes(m) || m.key === 'self_consistency_gap').map((m) => {
      const pairs = info.seeds.map((seed) => {
        const ra = done.find((r) => r.seed === seed && r.mode === main);
        const rb = done.find((r) => r.seed === seed && r.mode === b);
        return { a: ra ? value(ends.get(ra.id)!.after, m.key) : NaN, b: rb ? value(ends.get(rb.id)!.after, m.key) : NaN };
      });
      const c = pairedComparison(pairs, m.better);
      return { a: main, b, metric: m.key, difference: record(c.difference), wins_a: c.winsA, wins_b: c.winsB, ties: c.ties };
    }),
  );
  return {
    version: SWEEP_FORMAT_VERSION,
    sweep: info.id,
    created: now.toISOString(),
    main,
    seeds: info.seeds,
    metrics: [...SWEEP_METRICS],
    modes,
    paired,
    per_seed: runs.filter((r) => r.status !== 'absent').map((r) => {
      const e = ends.get(r.id) ?? runEndpoints(r.rounds, r.crossplay);
      return { seed: r.seed, mode: r.mode, run: r.id, status: r.status, before: e.before, after: e.after };
    }),
  };
}
