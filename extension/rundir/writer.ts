/**
 * The trainer's side of the run directory. Every record is validated against its schema before it is
 * written, so a bug in the trainer fails loudly here instead of producing a directory nobody can read.
 * Documents are replaced atomically; logs grow by whole lines; a round's round.json is written last.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { z } from 'zod';
import { appendLine, writeFileAtomic, writeJsonAtomic } from '../util/atomic';
import { effectiveStatus } from './liveness';
import { completeRoundNumbers, parseRoundName, runLayout, type RunLayout } from './layout';
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

  /** Creates `<runsFolder>/<id>/` with run.json (status running, attempt 1) and config.json. */
  static create(runsFolder: string, init: NewRun, options: WriterOptions = {}): RunWriter {
    const now = (options.now ?? (() => new Date()))();
    const id = init.id ?? `${now.toISOString().slice(0, 19).replace(/:/g, '-')}-${init.name}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) throw new RunWriterError(`run id ${JSON.stringify(id)} is not a safe folder name`);
    const dir = path.join(runsFolder, id);
    const layout = runLayout(dir);
    if (fs.existsSync(layout.runJson)) {
      throw new RunWriterError(`${dir} already holds a run; resume it instead of creating it again`);
    }
    fs.mkdirSync(layout.transcripts, { recursive: true });
    fs.mkdirSync(layout.rounds, { recursive: true });
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
      pid: options.pid ?? process.pid,
      host: options.host ?? os.hostname(),
      mode: init.mode,
      engine: init.engine,
      ...(init.device ? { device: init.device } : {}),
      ...(init.dtype ? { dtype: init.dtype } : {}),
      base_model: init.base_model,
      rounds_planned: init.rounds_planned,
      rounds_completed: 0,
      roles: init.roles,
    }, 'run.json');
    // config.json first: a run.json always has its config next to it.
    writeJsonAtomic(layout.config, check(ConfigDocumentSchema, init.config, 'config.json'));
    writeJsonAtomic(layout.runJson, info);
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
      raw = JSON.parse(fs.readFileSync(file, 'utf8'));
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
    if (effectiveStatus(info) === 'running' && info.pid !== (options.pid ?? process.pid) && (info.host === undefined || info.host === os.hostname())) {
      // Two trainers appending to one run would interleave their records.
      throw new RunWriterError(`${dir} is still being written by process ${info.pid}; stop it before resuming`);
    }
    const fromRound = writer.lastCompleteRound() + 1;
    writer.updateInfo({ attempt: writer.attempt + 1, status: 'running', reason: null, pid: options.pid ?? process.pid, host: options.host ?? os.hostname() });
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
      const parsed = RoundInfoSchema.safeParse(JSON.parse(fs.readFileSync(this.paths.roundJson(round), 'utf8')));
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
    fs.mkdirSync(this.paths.transcripts, { recursive: true });
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
    const dir = this.paths.round(round);
    fs.mkdirSync(parts.length > 1 ? path.join(dir, ...parts.slice(0, -1)) : dir, { recursive: true });
    return path.join(dir, ...parts);
  }

  /** A slot's folder in a round (its parent created), where a policy's weights are saved. */
  slotDir(round: number, slot: string): string {
    fs.mkdirSync(this.paths.round(round), { recursive: true });
    return this.paths.slot(round, slot);
  }

  /** The folder of a round's optimizer state (its parent created). */
  optimizerDir(round: number): string {
    fs.mkdirSync(this.paths.round(round), { recursive: true });
    return this.paths.optimizer(round);
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
    fs.mkdirSync(this.paths.round(round), { recursive: true });
    writeJsonAtomic(marker, info);
    if (round > this.current.rounds_completed) this.updateInfo({ rounds_completed: round });
    return info;
  }

  writeCrossplay(value: Crossplay): void {
    writeJsonAtomic(this.paths.crossplay, check(CrossplaySchema, value, 'crossplay.json'));
  }

  writeEval(name: string, value: EvalResult): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new RunWriterError(`eval name ${JSON.stringify(name)} is not a safe file name`);
    fs.mkdirSync(this.paths.evalDir, { recursive: true });
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
      raw = JSON.parse(fs.readFileSync(this.paths.runJson, 'utf8')) as Record<string, unknown>;
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
      for (const name of fs.readdirSync(this.paths.transcripts)) {
        if (parseRoundName(name) !== null) files.push(path.join(this.paths.transcripts, name));
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
    fd = fs.openSync(file, 'r+');
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

function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new RunWriterError(`invalid ${what}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}
