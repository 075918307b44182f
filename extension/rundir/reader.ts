/**
 * Everything that shows a run reads it through here: the extension host, the CLI, tests. A reader
 * only ever reads; the directory may be live (a trainer appending to it) or finished, local or copied
 * from another machine. Damage is reported, not thrown, wherever a partial answer is still useful: a
 * corrupt line is skipped and counted; only a missing, corrupt or too-new run.json refuses the run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { z } from 'zod';
import { linkOnPath, readTextFile, regularFiles, UnsafeFileError } from '../util/safe-fs';
import { foldAnnotations } from './annotations';
import { JsonlTail, readJsonl, type SkippedLine } from './jsonl';
import { effectiveStatus, type EffectiveStatus, type LivenessProbe } from './liveness';
import { runLayout, roundFolderNumbers, transcriptRoundNumbers, type RunLayout } from './layout';
import {
  AnnotationRecordSchema,
  CrossplaySchema,
  EvalResultSchema,
  ExchangeSchema,
  FORMAT_VERSION,
  NashGapRecordSchema,
  RUN_FORMAT,
  RoundInfoSchema,
  ConfigDocumentSchema,
  RunEventSchema,
  RunInfoSchema,
  describeIssues,
  type Annotation,
  type AnnotationRecord,
  type Crossplay,
  type EvalResult,
  type Exchange,
  type NashGapRecord,
  type RoundInfo,
  type ConfigDocument,
  type RunEvent,
  type RunInfo,
} from './schema';

export { effectiveStatus, isPidAlive, type EffectiveStatus, type LivenessProbe } from './liveness';

/** The documents of a run are small; a larger one is refused (named) instead of read into memory. */
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;
const MAX_RUN_JSON_BYTES = 1024 * 1024;

export type RunDirErrorKind = 'not-a-run' | 'newer-format' | 'corrupt' | 'unreadable';

/** Why a folder cannot be read as a run; the message names the file and the problem. */
export class RunDirError extends Error {
  constructor(
    readonly kind: RunDirErrorKind,
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = 'RunDirError';
  }
}

/** A problem that did not stop the read: a skipped line, a corrupt document, a missing file. */
export interface RunIssue {
  file: string;
  line?: number;
  problem: string;
}

export interface EvalEntry {
  name: string;
  result: EvalResult;
}

export interface RunSnapshot {
  dir: string;
  info: RunInfo;
  status: EffectiveStatus;
  config: ConfigDocument | null;
  rounds: RoundInfo[];
  events: RunEvent[];
  nashgap: NashGapRecord[];
  crossplay: Crossplay | null;
  evals: EvalEntry[];
  annotations: Annotation[];
  /** Rounds that have a transcript file. */
  transcriptRounds: number[];
  issues: RunIssue[];
}

/** Anything carrying the two fields the attempt-validity rule looks at. */
export interface AttemptStamped {
  attempt: number;
  round?: number;
}

export class RunReader {
  private readonly paths: RunLayout;
  private currentInfo: RunInfo;
  private issueList: RunIssue[] = [];

  private constructor(
    readonly dir: string,
    info: RunInfo,
  ) {
    this.paths = runLayout(dir);
    this.currentInfo = info;
  }

  /** Opens a run directory; throws RunDirError when it is not one, is corrupt, or is too new. */
  static open(dir: string): RunReader {
    const abs = path.resolve(dir);
    return new RunReader(abs, readRunInfo(abs));
  }

  /** run.json as last read. */
  get info(): RunInfo {
    return this.currentInfo;
  }

  /** Reads run.json again (it changes as the run progresses). */
  refreshInfo(): RunInfo {
    this.currentInfo = readRunInfo(this.dir);
    return this.currentInfo;
  }

  status(probe: LivenessProbe = {}): EffectiveStatus {
    return effectiveStatus(this.currentInfo, probe);
  }

  /** Problems met by the reads so far (skipped lines, corrupt documents). */
  issues(): RunIssue[] {
    return [...this.issueList];
  }

  config(): ConfigDocument | null {
    return this.readDocument(this.paths.config, ConfigDocumentSchema);
  }

  /** Complete rounds (those with a readable round.json), in order. */
  rounds(): RoundInfo[] {
    const out: RoundInfo[] = [];
    for (const n of roundFolderNumbers(this.dir)) {
      const info = this.readDocument(this.paths.roundJson(n), RoundInfoSchema);
      if (!info) continue;
      if (info.round !== n) {
        this.issue({ file: this.paths.roundJson(n), problem: `says round ${info.round} but lies in the folder of round ${n}` });
        continue;
      }
      out.push(info);
    }
    return out;
  }

  /** The validity rule of docs/run-directory.md ("Records and attempts"), for the current state. */
  validity(): (record: AttemptStamped) => boolean {
    return validityRule(this.currentInfo, this.rounds());
  }

  events(): RunEvent[] {
    return this.readLog(this.paths.events, RunEventSchema);
  }

  nashGap(): NashGapRecord[] {
    return this.readLog(this.paths.nashgap, NashGapRecordSchema);
  }

  /** Rounds that have a transcript file, in order. */
  transcriptRounds(): number[] {
    return transcriptRoundNumbers(this.dir);
  }

  /** The valid exchanges of one round. */
  transcript(round: number): Exchange[] {
    const file = this.paths.transcript(round);
    return this.readLog(file, ExchangeSchema).filter((x) => {
      if (x.round === round) return true;
      this.issue({ file, problem: `exchange ${x.id} says round ${x.round}; skipped` });
      return false;
    });
  }

  crossplay(): Crossplay | null {
    return this.readDocument(this.paths.crossplay, CrossplaySchema);
  }

  evals(): EvalEntry[] {
    const names = regularFiles(this.paths.evalDir).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
    const out: EvalEntry[] = [];
    for (const n of names) {
      const result = this.readDocument(path.join(this.paths.evalDir, n), EvalResultSchema);
      if (result) out.push({ name: n.slice(0, -'.json'.length), result });
    }
    return out;
  }

  annotationRecords(): AnnotationRecord[] {
    const { records, skipped } = readJsonl(this.paths.annotations, AnnotationRecordSchema, this.dir);
    this.noteSkipped(skipped);
    return records;
  }

  /** The annotations in force: the last record per id, deleted ones left out. */
  annotations(): Annotation[] {
    return foldAnnotations(this.annotationRecords());
  }

  /** Everything except the transcripts (which are read per round). */
  load(probe: LivenessProbe = {}): RunSnapshot {
    this.issueList = [];
    const info = this.refreshInfo();
    const rounds = this.rounds();
    const valid = validityRule(info, rounds);
    return {
      dir: this.dir,
      info,
      status: effectiveStatus(info, probe),
      config: this.config(),
      rounds,
      events: this.readLog(this.paths.events, RunEventSchema, valid),
      nashgap: this.readLog(this.paths.nashgap, NashGapRecordSchema, valid),
      crossplay: this.crossplay(),
      evals: this.evals(),
      annotations: this.annotations(),
      transcriptRounds: this.transcriptRounds(),
      issues: this.issues(),
    };
  }

  /** A follower for a live run: each poll() returns what was appended since the previous one. */
  follow(options: FollowOptions = {}): RunFollower {
    return new RunFollower(this, options);
  }

  private readLog<T extends AttemptStamped>(file: string, schema: z.ZodType<T>, valid = this.validity()): T[] {
    const { records, skipped } = readJsonl(file, schema, this.dir);
    this.noteSkipped(skipped);
    return records.filter(valid);
  }

  private readDocument<T>(file: string, schema: z.ZodType<T>): T | null {
    const result = readJsonDocument(file, schema, this.dir);
    if (result.problem) this.issue({ file, problem: result.problem });
    return result.value;
  }

  private noteSkipped(skipped: SkippedLine[]): void {
    for (const s of skipped) this.issue({ file: s.file, ...(s.line > 0 ? { line: s.line } : {}), problem: s.problem });
  }

  private issue(i: RunIssue): void {
    this.issueList.push(i);
  }
}

// ---------------------------------------------------------------------------------------------------
// Following a live run

export interface FollowOptions {
  /** Also follow transcripts/*.jsonl (the stepper needs them; the dashboard does not). */
  transcripts?: boolean;
  probe?: LivenessProbe;
}

export interface RunDelta {
  /** Forget everything earlier polls returned: this delta holds the whole valid state again. */
  reset: boolean;
  /** run.json when it changed since the previous poll (always on a reset). */
  info: RunInfo | null;
  status: EffectiveStatus;
  /** Rounds that became complete. */
  rounds: RoundInfo[];
  events: RunEvent[];
  exchanges: Exchange[];
  nashgap: NashGapRecord[];
  /** Raw annotation records appended (fold them with foldAnnotations). */
  annotations: AnnotationRecord[];
  /** crossplay.json when it changed (null when it was removed); undefined when unchanged. */
  crossplay?: Crossplay | null;
  /** All eval results when one of them changed; undefined when unchanged. */
  evals?: EvalEntry[];
  skipped: SkippedLine[];
}

/**
 * Reads a run incrementally from the byte offsets reached by the previous poll. Validity can only
 * change for records already returned when a resume starts a new attempt (records of the rounds being
 * replayed become void); the follower then starts over and returns a delta with `reset: true`.
 */
export class RunFollower {
  private readonly paths: RunLayout;
  private tails = new Map<string, JsonlTail<unknown>>();
  private knownRounds = new Map<number, RoundInfo>();
  private lastInfoJson: string | null = null;
  private lastAttempt: number | null = null;
  private docStamps = new Map<string, string>();
  /** Rounds found complete since the last poll. */
  private pendingRounds: RoundInfo[] = [];

  constructor(
    private readonly reader: RunReader,
    private readonly options: FollowOptions,
  ) {
    this.paths = runLayout(reader.dir);
  }

  /** Throws RunDirError if run.json itself became unreadable (the run was replaced or damaged). */
  poll(): RunDelta {
    let info = this.reader.refreshInfo();
    let reset = this.lastAttempt === null || info.attempt !== this.lastAttempt;
    if (reset) this.startOver();
    this.scanRounds();

    let read = this.readTails();
    // A record from a later attempt than run.json names means run.json was rewritten after we read
    // it (a resume): read it again, and start over if the attempt did change.
    if (read.maxAttempt > info.attempt) {
      info = this.reader.refreshInfo();
      if (info.attempt !== this.lastAttempt) {
        reset = true;
        this.startOver();
        this.scanRounds();
        read = this.readTails();
      }
    }
    this.lastAttempt = info.attempt;

    const valid = validityRule(info, [...this.knownRounds.values()]);
    const infoJson = JSON.stringify(info);
    const infoChanged = reset || infoJson !== this.lastInfoJson;
    this.lastInfoJson = infoJson;

    const delta: RunDelta = {
      reset,
      info: infoChanged ? info : null,
      status: effectiveStatus(info, this.options.probe),
      rounds: read.newRounds,
      events: (read.events as RunEvent[]).filter(valid),
      exchanges: (read.exchanges as Exchange[]).filter(valid),
      nashgap: (read.nashgap as NashGapRecord[]).filter(valid),
      annotations: read.annotations as AnnotationRecord[],
      skipped: read.skipped,
    };
    if (reset) delta.rounds = [...this.knownRounds.values()].sort((a, b) => a.round - b.round);
    if (this.changed(this.paths.crossplay) || reset) delta.crossplay = this.reader.crossplay();
    if (this.changed(this.paths.evalDir) || reset) delta.evals = this.reader.evals();
    return delta;
  }

  private startOver(): void {
    this.tails.clear();
    this.knownRounds.clear();
    this.docStamps.clear();
    this.pendingRounds = [];
  }

  private scanRounds(): void {
    for (const n of roundFolderNumbers(this.reader.dir)) {
      if (this.knownRounds.has(n)) continue;
      const { value } = readJsonDocument(this.paths.roundJson(n), RoundInfoSchema, this.reader.dir);
      if (value && value.round === n) {
        this.knownRounds.set(n, value);
        this.pendingRounds.push(value);
      }
    }
  }

  private readTails() {
    const out = {
      events: [] as unknown[],
      exchanges: [] as unknown[],
      nashgap: [] as unknown[],
      annotations: [] as unknown[],
      skipped: [] as SkippedLine[],
      newRounds: this.pendingRounds.sort((a, b) => a.round - b.round),
      maxAttempt: 0,
    };
    this.pendingRounds = [];
    const take = (file: string, schema: z.ZodType<unknown>, into: unknown[]) => {
      let tail = this.tails.get(file);
      if (!tail) this.tails.set(file, (tail = new JsonlTail(file, schema, undefined, this.reader.dir)));
      const r = tail.read();
      for (const rec of r.records) {
        const a = (rec as Partial<AttemptStamped>).attempt;
        if (typeof a === 'number' && a > out.maxAttempt) out.maxAttempt = a;
        into.push(rec);
      }
      out.skipped.push(...r.skipped);
    };
    take(this.paths.events, RunEventSchema, out.events);
    take(this.paths.nashgap, NashGapRecordSchema, out.nashgap);
    take(this.paths.annotations, AnnotationRecordSchema, out.annotations);
    if (this.options.transcripts) {
      for (const n of transcriptRoundNumbers(this.reader.dir)) take(this.paths.transcript(n), ExchangeSchema, out.exchanges);
    }
    return out;
  }

  /** Whether a document (or folder of documents) changed since the last look, by size and mtime. */
  private changed(p: string): boolean {
    let stamp = 'absent';
    try {
      const st = fs.lstatSync(p);
      if (st.isDirectory()) {
        stamp = fs
          .readdirSync(p)
          .sort()
          .map((n) => {
            const s = fs.lstatSync(path.join(p, n));
            return `${n}:${s.size}:${s.mtimeMs}`;
          })
          .join('|');
      } else stamp = `${st.size}:${st.mtimeMs}:${st.ino}`;
    } catch {
      /* absent */
    }
    const before = this.docStamps.get(p);
    this.docStamps.set(p, stamp);
    return before !== undefined && before !== stamp;
  }
}

// ---------------------------------------------------------------------------------------------------
// Helpers shared by the reader, the follower and the runs list

/**
 * A record of round r is valid if its attempt equals the attempt in rounds/round-r/round.json or,
 * for a round without one, the attempt in run.json. Run-level records (no round) are always valid.
 * Round 0 follows the rule like any other round: an attempt killed before round 0's round.json left
 * records that the next attempt writes again.
 */
export function validityRule(info: RunInfo, completeRounds: readonly RoundInfo[]): (record: AttemptStamped) => boolean {
  const roundAttempt = new Map(completeRounds.map((r) => [r.round, r.attempt]));
  return (record) => {
    if (record.round === undefined) return true;
    return record.attempt === (roundAttempt.get(record.round) ?? info.attempt);
  };
}

export interface RunListing {
  dir: string;
  /** Present when run.json could be read. */
  info?: RunInfo;
  status?: EffectiveStatus;
  /** Present when it could not. */
  error?: { kind: RunDirErrorKind; message: string };
}

/**
 * The runs in a runs folder: every sub-folder holding a run.json (readable or not), newest first,
 * unreadable ones last. Folders without a run.json are not runs and are left out.
 */
export function listRuns(runsFolder: string, probe: LivenessProbe = {}): RunListing[] {
  let names: string[];
  try {
    // Real folders only (a link is not followed), and not hidden ones (a run being created).
    names = fs.readdirSync(runsFolder, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: RunListing[] = [];
  for (const name of names) {
    const dir = path.join(runsFolder, name);
    let hasManifest = false;
    try {
      fs.lstatSync(runLayout(dir).runJson);
      hasManifest = true;
    } catch {
      /* not a run */
    }
    if (!hasManifest) continue;
    try {
      const info = readRunInfo(dir);
      out.push({ dir, info, status: effectiveStatus(info, probe) });
    } catch (e) {
      if (!(e instanceof RunDirError)) throw e;
      out.push({ dir, error: { kind: e.kind, message: e.message } });
    }
  }
  return out.sort((a, b) => {
    if (!a.info || !b.info) return a.info ? -1 : b.info ? 1 : a.dir.localeCompare(b.dir);
    return b.info.created.localeCompare(a.info.created) || a.dir.localeCompare(b.dir);
  });
}

/** Reads and checks run.json, with the error a user needs when it cannot be used. */
export function readRunInfo(dir: string): RunInfo {
  const file = runLayout(dir).runJson;
  let text: string;
  try {
    text = readTextFile(file, MAX_RUN_JSON_BYTES);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const why = fs.existsSync(dir) ? 'it has no run.json' : 'it does not exist';
      throw new RunDirError('not-a-run', file, `${dir} is not a run directory: ${why}`);
    }
    if (e instanceof UnsafeFileError) throw new RunDirError('unreadable', file, `${file} cannot be read: it ${e.problem}`);
    throw new RunDirError('unreadable', file, `${file} cannot be read: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new RunDirError('corrupt', file, `${file} is corrupt: not valid JSON (${(e as Error).message})`);
  }
  const obj = (typeof raw === 'object' && raw !== null ? raw : {}) as { format?: unknown; version?: unknown };
  if (obj.format !== RUN_FORMAT) {
    throw new RunDirError('not-a-run', file, `${file} is not an ABSP run manifest: its "format" is ${JSON.stringify(obj.format)}, expected "${RUN_FORMAT}"`);
  }
  if (typeof obj.version === 'number' && obj.version > FORMAT_VERSION) {
    throw new RunDirError(
      'newer-format',
      file,
      `${file} has format version ${obj.version}, newer than the version ${FORMAT_VERSION} this ABSP Lab reads; update ABSP Lab to open this run`,
    );
  }
  const parsed = RunInfoSchema.safeParse(raw);
  if (!parsed.success) {
    throw new RunDirError('corrupt', file, `${file} is corrupt: ${describeIssues(parsed.error)}`);
  }
  return parsed.data;
}

function readJsonDocument<T>(file: string, schema: z.ZodType<T>, root: string): { value: T | null; problem?: string } {
  let text: string;
  try {
    const link = linkOnPath(root, file);
    if (link !== null) return { value: null, problem: `not read: it lies under ${link}, which is a symbolic link or not a folder` };
    text = readTextFile(file, MAX_DOCUMENT_BYTES);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { value: null };
    if (e instanceof UnsafeFileError) return { value: null, problem: `cannot be read: it ${e.problem}` };
    return { value: null, problem: `cannot be read: ${(e as Error).message}` };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { value: null, problem: `not valid JSON (${(e as Error).message})` };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) return { value: null, problem: describeIssues(parsed.error) };
  return { value: parsed.data };
}
