/**
 * The trainer's side of the run directory. Every record is validated against its schema before it is
 * written, so a bug in the trainer fails loudly here instead of producing a directory nobody can read.
 * Documents are replaced atomically; logs grow by whole lines; a round's round.json is written last.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { z } from 'zod';
import { appendLine, fsyncDir, fsyncFile, removeStaleTempFiles, writeFileAtomic, writeJsonAtomic } from '../util/atomic';
import { ensureRealDir, lstatOrNull, openRegular, readTextFile } from '../util/safe-fs';
import { checkTrainer, isPidAlive, startTokenField } from './liveness';
import { completeRoundNumbers, newFolderId, parseRoundName, roundDirName, runLayout, type RunLayout } from './layout';
import {
  CrossplaySchema,
  EvalResultSchema,
  ExchangeSchema,
  FORMAT_VERSION,
  NashGapRecordSchema,
  RUN_FORMAT,
  RoundEventSchema,
  RoundInfoSchema,
  ConfigDocumentSchema,
  RunEventSchema,
  RunInfoSchema,
  describeIssues,
  type Crossplay,
  type EvalResult,
  type Exchange,
  type Mode,
  type NashGapRecord,
  type RoundInfo,
  type ConfigDocument,
  type RunEvent,
  type RunInfo,
  type RunStatus,
} from './schema';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** An event as the trainer hands it over: the writer stamps the time and the attempt. */
export type EventInput = DistributiveOmit<RunEvent, 't' | 'attempt'> & { t?: string; attempt?: number };
export type ExchangeInput = Omit<Exchange, 'attempt'> & { attempt?: number };
export type NashGapInput = Omit<NashGapRecord, 'attempt'> & { attempt?: number };

export interface NewRun {
  /** Folder name and run id; by default the creation time plus the name. */
  id?: string;
  name: string;
  mode: Mode;
  engine: string;
  device?: string;
  dtype?: string;
  base_model: string;
  rounds_planned: number;
  roles: string[];
  /** The resolved config, written once as config.json. */
  config: ConfigDocument;
}

export interface RoundSummary {
  steps: [number, number] | null;
  roles: string[];
  metrics: Record<string, number | null>;
  exchanges: number;
  fingerprints?: Record<string, string>;
  /** Written to nashgap.jsonl before round.json, so that it is void if the round never completes. */
  nashgap?: Omit<NashGapInput, 'round'>;
}

export interface WriterOptions {
  /** The clock used for every timestamp; tests and fixtures pass a fixed one. */
  now?: () => Date;
  /** The process that owns the run (recorded in run.json so readers can tell a killed run). */
  pid?: number;
  /** The machine that process runs on; os.hostname() by default. */
  host?: string;
}

export class RunWriterError extends Error {}

export class RunWriter {
  private readonly paths: RunLayout;
  private readonly now: () => Date;

  private constructor(
    readonly dir: string,
    private current: RunInfo,
    options: WriterOptions,
  ) {
    this.paths = runLayout(dir);
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Creates `<runsFolder>/<id>/` with run.json (status running, attempt 1) and config.json. The folder
   * is assembled under a hidden name and renamed into place once both documents are written, so a
   * kill during creation never leaves a run folder without its run.json.
   */
  static create(runsFolder: string, init: NewRun, options: WriterOptions = {}): RunWriter {
    const now = (options.now ?? (() => new Date()))();
    const id = init.id ?? newFolderId(now, init.name, (taken) => lstatOrNull(path.join(runsFolder, taken)) !== null);
    if (!RUN_ID.test(id)) throw new RunWriterError(`run id ${JSON.stringify(id)} is not a safe folder name`);
    const dir = path.join(runsFolder, id);
    const layout = runLayout(dir);
    if (lstatOrNull(dir) !== null) {
      if (lstatOrNull(layout.runJson) !== null) throw new RunWriterError(`${dir} already holds a run; resume it instead of creating it again`);
      throw new RunWriterError(`${dir} exists but is not a run directory; remove it or choose another name`);
    }
    fs.mkdirSync(runsFolder, { recursive: true });
    removeStaleStaging(runsFolder);
    const pid = options.pid ?? process.pid;
    const info = check(RunInfoSchema, {
      format: RUN_FORMAT,
      version: FORMAT_VERSION,
      id,
      name: init.name,
      created: now.toISOString(),
      updated: now.toISOString(),
      status: 'running',
      reason: null,
      attempt: 1,
      pid,
      host: options.host ?? os.hostname(),
      ...startTokenField(pid),
      mode: init.mode,
      engine: init.engine,
      ...(init.device ? { device: init.device } : {}),
      ...(init.dtype ? { dtype: init.dtype } : {}),
      base_model: init.base_model,
      rounds_planned: init.rounds_planned,
      rounds_completed: 0,
      roles: init.roles,
    }, 'run.json');
    const config = check(ConfigDocumentSchema, init.config, 'config.json');
    const staging = path.join(runsFolder, `${STAGING_PREFIX}${id}.${process.pid}`);
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging);
    try {
      const stagingLayout = runLayout(staging);
      fs.mkdirSync(stagingLayout.transcripts);
      fs.mkdirSync(stagingLayout.rounds);
      // config.json first: a run.json always has its config next to it.
      writeJsonAtomic(stagingLayout.config, config);
      writeJsonAtomic(stagingLayout.runJson, info);
      fs.renameSync(staging, dir);
    } catch (e) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw e;
    }
    fsyncDir(runsFolder);
    return new RunWriter(dir, info, options);
  }

  /**
   * Opens an existing run to add to it (cross-play, eval) without changing its status. A line left
   * half-written by a killed writer is ended with a newline, so that the next record starts on a line
   * of its own and the torn one is skipped by readers as a single corrupt line.
   */
  static open(dir: string, options: WriterOptions = {}): RunWriter {
    const file = runLayout(dir).runJson;
    let raw: unknown;
    try {
      raw = JSON.parse(readTextFile(file, MAX_RUN_JSON_BYTES));
    } catch (e) {
      throw new RunWriterError(`${file}: cannot read the run manifest (${(e as Error).message})`);
    }
    const version = (raw as { version?: unknown })?.version;
    if (typeof version === 'number' && version > FORMAT_VERSION) {
      throw new RunWriterError(`${file}: format version ${version} is newer than this program's (${FORMAT_VERSION}); refusing to write to it`);
    }
    const info = check(RunInfoSchema, raw, file);
    const writer = new RunWriter(dir, info, options);
    writer.terminateTornLines();
    return writer;
  }

  /**
   * Starts the next attempt of a stopped or killed run: attempt + 1, status running, and a resume
   * event for the first round it plays again (the last complete round + 1). Records the earlier
   * attempt wrote for that round and later ones become void by the attempt rule.
   */
  static resume(dir: string, options: WriterOptions = {}): RunWriter {
    const writer = RunWriter.open(dir, options);
    const info = writer.current;
    const pid = options.pid ?? process.pid;
    if (info.status === 'completed') throw new RunWriterError(`${dir} is complete (${info.rounds_completed} of ${info.rounds_planned} rounds); there is nothing to resume`);
    if (info.status === 'running' && info.pid !== pid && checkTrainer(info).state === 'alive') {
      // Two trainers appending to one run would interleave their records.
      throw new RunWriterError(`${dir} is still being written by process ${info.pid}; stop it before resuming`);
    }
    // The resuming trainer is the run's only writer now: what killed writers left half-done goes.
    removeStaleTempFiles(dir, isPidAlive);
    const last = writer.lastCompleteRound();
    const fromRound = last + 1;
    writer.updateInfo({
      attempt: writer.attempt + 1,
      status: 'running',
      reason: null,
      pid,
      host: options.host ?? os.hostname(),
      ...startTokenField(pid),
      // A kill between a round's round.json and run.json leaves run.json one round behind.
      rounds_completed: Math.max(0, last),
    });
    writer.event({ type: 'resume', round: fromRound, from_round: fromRound });
    return writer;
  }

  /** The highest round with a round.json, or -1 when not even round 0 is complete. */
  lastCompleteRound(): number {
    return Math.max(-1, ...completeRoundNumbers(this.dir));
  }

  /** A complete round's record, or null when it is missing or unreadable. */
  roundInfo(round: number): RoundInfo | null {
    try {
      // Someone else's run directory: not through a link, not blocking on a FIFO, bounded.
      const parsed = RoundInfoSchema.safeParse(JSON.parse(readTextFile(this.paths.roundJson(round), MAX_RUN_JSON_BYTES)));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  }

  get info(): RunInfo {
    return this.current;
  }

  get attempt(): number {
    return this.current.attempt;
  }

  /** Records the run's status in run.json and as a status event (reason for failed/paused/stopped). */
  setStatus(status: RunStatus, reason: string | null = null): void {
    this.updateInfo({ status, reason });
    this.event({ type: 'status', status, reason });
  }

  event(input: EventInput): RunEvent {
    const record = check(RunEventSchema, { ...input, t: input.t ?? this.timestamp(), attempt: input.attempt ?? this.attempt }, 'event');
    appendLine(this.paths.events, JSON.stringify(record));
    return record;
  }

  exchange(input: ExchangeInput): Exchange {
    const record = check(ExchangeSchema, { ...input, attempt: input.attempt ?? this.attempt }, `exchange ${input.id}`);
    ensureRealDir(this.dir, 'transcripts');
    appendLine(this.paths.transcript(record.round), JSON.stringify(record));
    return record;
  }

  appendNashGap(input: NashGapInput): NashGapRecord {
    const record = check(NashGapRecordSchema, { ...input, attempt: input.attempt ?? this.attempt }, 'nash-gap record');
    appendLine(this.paths.nashgap, JSON.stringify(record));
    return record;
  }

  /** A round's folder (created), or a path inside it. */
  roundPath(round: number, ...parts: string[]): string {
    const dir = this.roundDir(round);
    if (parts.length > 1) ensureRealDir(dir, ...parts.slice(0, -1));
    return path.join(dir, ...parts);
  }

  /** A slot's folder in a round (created, a real folder), where a policy's weights are saved. */
  slotDir(round: number, slot: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(slot)) throw new RunWriterError(`slot ${JSON.stringify(slot)} is not a plain folder name`);
    return ensureRealDir(this.roundDir(round), slot);
  }

  /** The folder of a round's optimizer state (created, a real folder). */
  optimizerDir(round: number): string {
    return ensureRealDir(this.roundDir(round), path.basename(this.paths.optimizer(round)));
  }

  /** A round's folder, created; it and `rounds/` must be real folders, not links out of the run. */
  private roundDir(round: number): string {
    return ensureRealDir(this.dir, 'rounds', roundDirName(round));
  }

  /** Writes one file of a round (an adapter, optimizer state) atomically. */
  writeRoundFile(round: number, relPath: string, data: string | Uint8Array): string {
    const parts = relPath.split(/[\\/]/).filter(Boolean);
    if (parts.length === 0 || parts.some((p) => p === '..') || parts[parts.length - 1] === 'round.json') {
      throw new RunWriterError(`round file ${JSON.stringify(relPath)} is not a plain path inside the round`);
    }
    const file = this.roundPath(round, ...parts);
    writeFileAtomic(file, data);
    return file;
  }

  /**
   * Marks a round complete once its files are in place: appends its Nash-gap record and its `round`
   * event, then writes round.json (the marker), then updates run.json. A crash before round.json leaves
   * records that the next attempt's replay of the round makes void; a crash after it loses nothing.
   */
  completeRound(round: number, summary: RoundSummary): RoundInfo {
    const marker = this.paths.roundJson(round);
    if (fs.existsSync(marker)) throw new RunWriterError(`${marker} exists: round ${round} is already complete`);
    const info = check(RoundInfoSchema, {
      round,
      attempt: this.attempt,
      completed: this.timestamp(),
      steps: summary.steps,
      roles: summary.roles,
      metrics: summary.metrics,
      exchanges: summary.exchanges,
      ...(summary.fingerprints ? { fingerprints: summary.fingerprints } : {}),
    }, `round ${round}`);
    check(RoundEventSchema, { type: 'round', t: info.completed, attempt: this.attempt, round, metrics: summary.metrics }, `round ${round} event`);
    if (summary.nashgap) this.appendNashGap({ ...summary.nashgap, round });
    this.event({ type: 'round', t: info.completed, round, metrics: summary.metrics });
    this.roundDir(round);
    // The marker says the round's records are on disk: make it so before writing it.
    for (const file of [this.paths.events, this.paths.nashgap, this.paths.transcript(round), this.paths.log]) fsyncFile(file);
    writeJsonAtomic(marker, info);
    if (round > this.current.rounds_completed) this.updateInfo({ rounds_completed: round });
    return info;
  }

  writeCrossplay(value: Crossplay): void {
    writeJsonAtomic(this.paths.crossplay, check(CrossplaySchema, value, 'crossplay.json'));
  }

  writeEval(name: string, value: EvalResult): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new RunWriterError(`eval name ${JSON.stringify(name)} is not a safe file name`);
    ensureRealDir(this.dir, path.basename(this.paths.evalDir));
    const file = this.paths.evalResult(name);
    writeJsonAtomic(file, check(EvalResultSchema, value, `eval/${name}.json`));
    return file;
  }

  /** Appends a line to the human-readable trainer.log. */
  log(message: string): void {
    for (const line of message.split('\n')) appendLine(this.paths.log, `${this.timestamp()} ${line}`);
  }

  /** Rewrites run.json with the patch applied, keeping fields this version does not know. */
  private updateInfo(patch: Partial<RunInfo>): void {
    let raw: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(readTextFile(this.paths.runJson, MAX_RUN_JSON_BYTES));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) raw = parsed as Record<string, unknown>;
    } catch {
      /* rewritten from what this writer knows */
    }
    const next = { ...raw, ...this.current, ...patch, updated: this.timestamp() };
    this.current = check(RunInfoSchema, next, 'run.json');
    writeJsonAtomic(this.paths.runJson, next);
  }

  private terminateTornLines(): void {
    const files = [this.paths.events, this.paths.nashgap];
    try {
      for (const d of fs.readdirSync(this.paths.transcripts, { withFileTypes: true })) {
        if (d.isFile() && parseRoundName(d.name) !== null) files.push(path.join(this.paths.transcripts, d.name));
      }
    } catch {
      /* no transcripts yet */
    }
    for (const file of files) terminateTornLine(file);
  }

  private timestamp(): string {
    return this.now().toISOString();
  }
}

/** Ends a file's last line if a killed writer left it without its newline. */
export function terminateTornLine(file: string): boolean {
  let fd: number;
  try {
    fd = openRegular(file, 'update');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return false;
    const last = Buffer.alloc(1);
    fs.readSync(fd, last, 0, 1, size - 1);
    if (last[0] === 0x0a) return false;
    fs.writeSync(fd, Buffer.from('\n'), 0, 1, size);
    return true;
  } finally {
    fs.closeSync(fd);
  }
}

/** Run ids are folder names: no separators, no dot-files, no shell metacharacters. */
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
/** Where a run is assembled before it is renamed into place (hidden, so listings skip it). */
const STAGING_PREFIX = '.creating-';
/** run.json is a small document; anything larger is not one. */
export const MAX_RUN_JSON_BYTES = 1024 * 1024;

/** Removes the staging folders of creations whose process is gone. */
function removeStaleStaging(runsFolder: string): void {
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(runsFolder, { withFileTypes: true });
  } catch {
    return;
  }
  for (const d of names) {
    if (!d.isDirectory() || !d.name.startsWith(STAGING_PREFIX)) continue;
    const pid = Number(/\.(\d+)$/.exec(d.name)?.[1]);
    if (Number.isSafeInteger(pid) && pid !== process.pid && !isPidAlive(pid)) fs.rmSync(path.join(runsFolder, d.name), { recursive: true, force: true });
  }
}

function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new RunWriterError(`invalid ${what}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}
