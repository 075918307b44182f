/**
 * The user's labels on exchanges: the one file of a run directory the editor writes. Records are only
 * appended (put, or delete by id) and folded on read, the last record for an id winning, so concurrent
 * editors and a crash mid-write cost at most one line, never the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { appendLine, writeFileAtomic } from '../util/atomic';
import { readJsonl, type SkippedLine } from './jsonl';
import { runLayout } from './layout';
import { promptSeenByDefender, promptSeenIsHarmful } from './outcome';
import {
  AnnotationRecordSchema,
  describeIssues,
  type Annotation,
  type AnnotationLabel,
  type AnnotationRecord,
  type AnnotationSpan,
  type Exchange,
  type SeedLine,
} from './schema';
import { terminateTornLine } from './writer';

export interface AnnotationInput {
  /** Given to change an existing annotation; a new id is made otherwise. */
  id?: string;
  exchange: string;
  round: number;
  label: AnnotationLabel;
  note: string;
  /** null or absent: the whole exchange. */
  span?: AnnotationSpan | null;
}

let idCounter = 0;

/** Ids like a-1732401234567-1: unique within a process, ordered by creation, readable in the file. */
export function newAnnotationId(now: number = Date.now()): string {
  idCounter += 1;
  return `a-${now}-${idCounter}`;
}

/** The annotations in force: the last record per id, deleted ones left out, oldest first. */
export function foldAnnotations(records: readonly AnnotationRecord[]): Annotation[] {
  const byId = new Map<string, Annotation>();
  for (const r of records) {
    if (r.op === 'delete') byId.delete(r.id);
    else {
      byId.delete(r.id); // a changed annotation moves to where it was last written
      byId.set(r.id, r);
    }
  }
  return [...byId.values()].sort((a, b) => a.created.localeCompare(b.created));
}

export function readAnnotations(runDir: string): { annotations: Annotation[]; skipped: SkippedLine[] } {
  const { records, skipped } = readJsonl(runLayout(runDir).annotations, AnnotationRecordSchema);
  return { annotations: foldAnnotations(records), skipped };
}

/** Appends one validated record, first ending a line a crashed writer left without its newline. */
export function appendAnnotationRecord(runDir: string, record: AnnotationRecord): void {
  const parsed = AnnotationRecordSchema.safeParse(record);
  if (!parsed.success) throw new Error(`invalid annotation: ${describeIssues(parsed.error)}`);
  const layout = runLayout(runDir);
  if (!fs.existsSync(layout.runJson)) throw new Error(`${runDir} is not a run directory: it has no run.json`);
  const file = layout.annotations;
  terminateTornLine(file);
  appendLine(file, JSON.stringify(parsed.data));
}

/** Adds an annotation, or replaces the one with the same id (keeping its creation time). */
export function putAnnotation(runDir: string, input: AnnotationInput, now: Date = new Date()): Annotation {
  const stamp = now.toISOString();
  const existing = input.id ? readAnnotations(runDir).annotations.find((a) => a.id === input.id) : undefined;
  const record: Annotation = {
    op: 'put',
    id: input.id ?? newAnnotationId(now.getTime()),
    exchange: input.exchange,
    round: input.round,
    label: input.label,
    note: input.note,
    span: input.span ?? null,
    created: existing?.created ?? stamp,
    updated: stamp,
  };
  appendAnnotationRecord(runDir, record);
  return record;
}

export function deleteAnnotation(runDir: string, id: string, now: Date = new Date()): void {
  appendAnnotationRecord(runDir, { op: 'delete', id, updated: now.toISOString() });
}

export interface SeedExport {
  seeds: SeedLine[];
  /** Annotations whose exchange was not found among the valid exchanges of its round. */
  missing: Annotation[];
}

/**
 * Turns annotated failures into training seeds: the prompt the defender saw (the attack, or the seed
 * passed on unchanged), with the class the annotation implies — a jailbreak is harmful, an
 * over-refusal is benign, other labels keep the class of the prompt the defender saw (the seed's, unless
 * the judge says the rewrite changed it). Each prompt appears once.
 */
export function annotatedSeeds(
  annotations: readonly Annotation[],
  exchangesOfRound: (round: number) => readonly Exchange[],
  labels: readonly AnnotationLabel[] = ['jailbreak', 'over-refusal', 'judge-error', 'other'],
): SeedExport {
  const byRound = new Map<number, Map<string, Exchange>>();
  const lookup = (round: number, id: string) => {
    let m = byRound.get(round);
    if (!m) byRound.set(round, (m = new Map(exchangesOfRound(round).map((x) => [x.id, x]))));
    return m.get(id);
  };
  const seeds: SeedLine[] = [];
  const seen = new Set<string>();
  const missing: Annotation[] = [];
  for (const a of annotations) {
    if (!labels.includes(a.label)) continue;
    const x = lookup(a.round, a.exchange);
    if (!x) {
      missing.push(a);
      continue;
    }
    // The words of outcome.ts: a jailbreak answered a harmful prompt, an over-refusal refused a benign one;
    // otherwise the class of the prompt the defender saw (an off-topic rewrite of a harmful seed is benign).
    const harmful = a.label === 'jailbreak' ? true : a.label === 'over-refusal' ? false : promptSeenIsHarmful(x);
    const seed = { prompt: promptSeenByDefender(x), harmful };
    const key = JSON.stringify(seed);
    if (seen.has(key)) continue;
    seen.add(key);
    seeds.push(seed);
  }
  return { seeds, missing };
}

/** Writes seeds as JSONL (`{"prompt":...,"harmful":...}` per line), atomically. */
export function writeSeedsFile(file: string, seeds: readonly SeedLine[]): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  writeFileAtomic(file, seeds.map((s) => JSON.stringify({ prompt: s.prompt, harmful: s.harmful }) + '\n').join(''));
}
