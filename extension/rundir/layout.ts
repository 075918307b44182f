/**
 * Where each part of a run directory lives (docs/run-directory.md, "Layout"), and which adapter slot
 * plays which role in each training mode. This is the one place a run's paths are spelled: the
 * trainer, the readers, the panel worker, the host and the command line all ask here.
 */
import * as path from 'node:path';
import { isRealDir, isRegularFile, linkOnPath, realSubfolders, regularFiles, UnsafeFileError } from '../util/safe-fs';
import type { AdapterSlot, Mode } from './schema';

export function roundDirName(n: number): string {
  return `round-${String(n).padStart(4, '0')}`;
}

export function transcriptFileName(n: number): string {
  return `${roundDirName(n)}.jsonl`;
}

/** The round number in a name like `round-0007` or `round-0007.jsonl`, or null. */
export function parseRoundName(name: string): number | null {
  const m = /^round-(\d{4,})(?:\.jsonl)?$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** Inside a round folder: the optimizer state of every trained policy. */
const OPTIMIZER_DIR = 'optimizer';
/** What marks a slot folder as saved weights: a PEFT adapter, or a Hugging Face model directory. */
const SLOT_MARKER = { lora: 'adapter_config.json', full: 'config.json' } as const;

/** Every path of a run directory. */
export function runLayout(dir: string) {
  const rounds = path.join(dir, 'rounds');
  const round = (n: number) => path.join(rounds, roundDirName(n));
  const evalDir = path.join(dir, 'eval');
  return {
    dir,
    runJson: path.join(dir, 'run.json'),
    config: path.join(dir, 'config.json'),
    events: path.join(dir, 'events.jsonl'),
    transcripts: path.join(dir, 'transcripts'),
    transcript: (n: number) => path.join(dir, 'transcripts', transcriptFileName(n)),
    rounds,
    round,
    /** Written last: the round is complete. */
    roundJson: (n: number) => path.join(round(n), 'round.json'),
    /** A slot's folder: an adapter (attacker, defender, shared) or full weights (model). */
    slot: (n: number, slot: string) => path.join(round(n), slot),
    optimizer: (n: number) => path.join(round(n), OPTIMIZER_DIR),
    crossplay: path.join(dir, 'crossplay.json'),
    nashgap: path.join(dir, 'nashgap.jsonl'),
    evalDir,
    evalResult: (name: string) => path.join(evalDir, `${name}.json`),
    annotations: path.join(dir, 'annotations.jsonl'),
    log: path.join(dir, 'trainer.log'),
  };
}
export type RunLayout = ReturnType<typeof runLayout>;

/** Every path of a sweep: its manifest, its summary, and one run directory per planned run. */
export function sweepLayout(dir: string) {
  return {
    dir,
    sweepJson: path.join(dir, 'sweep.json'),
    /** The base config of every run (each run's own config.json adds its seed and mode). */
    config: path.join(dir, 'config.json'),
    summary: path.join(dir, 'summary.json'),
    run: (id: string) => path.join(dir, id),
    log: path.join(dir, 'sweep.log'),
  };
}
export type SweepLayout = ReturnType<typeof sweepLayout>;

/**
 * The folder name for a new run or sweep named `name` started at `now`: its UTC second and name, with
 * "-2", "-3", … added when `taken` says that one is in use (two runs started in the same second).
 */
export function newFolderId(now: Date, name: string, taken: (id: string) => boolean): string {
  const base = `${now.toISOString().slice(0, 19).replace(/:/g, '-')}-${name}`;
  for (let n = 1; n <= 1000; n++) {
    const id = n === 1 ? base : `${base}-${n}`;
    if (!taken(id)) return id;
  }
  throw new Error(`no free folder name for ${base}: 1,000 are taken`);
}

/** The folder of a sweep's run of one seed and mode. */
export function sweepRunId(seed: number, mode: string): string {
  return `seed-${seed}-${mode}`;
}

/**
 * A folder inside a run (a slot's weights, a round's optimizer state) that is about to be read: it
 * and every folder above it up to the run directory must be real folders, not links out of the run.
 */
export function realFolderInRun(runDir: string, folder: string): string {
  const link = linkOnPath(runDir, folder);
  if (link !== null) throw new UnsafeFileError(folder, `lies under ${link}, which is a symbolic link or not a folder; links inside a run directory are not followed`);
  if (!isRealDir(folder)) throw new UnsafeFileError(folder, 'is not a folder of this run (missing, or a symbolic link)');
  return folder;
}

/** A slot's folder relative to the run directory, as exchanges and crossplay.json record it. */
export function slotRelPath(round: number, slot: string): string {
  return path.posix.join('rounds', roundDirName(round), slot);
}

/** Rounds with a round.json, in order (complete as far as the folder shows; readers also check the file). */
export function completeRoundNumbers(runDir: string): number[] {
  const layout = runLayout(runDir);
  return roundFolderNumbers(runDir).filter((n) => isRegularFile(layout.roundJson(n)));
}

/** Rounds that have a folder (a real one: links are not followed), complete or not, in order. */
export function roundFolderNumbers(runDir: string): number[] {
  return realSubfolders(runLayout(runDir).rounds)
    .map(parseRoundName)
    .filter((n): n is number => n !== null)
    .sort((a, b) => a - b);
}

/** Rounds that have a transcript file (a regular file), in order. */
export function transcriptRoundNumbers(runDir: string): number[] {
  return regularFiles(runLayout(runDir).transcripts)
    .filter((n) => n.endsWith('.jsonl'))
    .map(parseRoundName)
    .filter((n): n is number => n !== null)
    .sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------------
// Slots and roles

export type WeightsKind = 'lora' | 'full';

/** A trained policy: its name (as round.json's `roles` records it), its slot folder and its kind. */
export interface PolicySlot {
  name: string;
  slot: AdapterSlot;
  kind: WeightsKind;
}

/** Which policy plays each role (null: the frozen base) and which policies a mode trains. */
export interface RoleSlots {
  attacker: PolicySlot | null;
  defender: PolicySlot | null;
  trained: PolicySlot[];
}

const ATTACKER: PolicySlot = { name: 'attacker', slot: 'attacker', kind: 'lora' };
const DEFENDER: PolicySlot = { name: 'defender', slot: 'defender', kind: 'lora' };
const SHARED_LORA: PolicySlot = { name: 'shared', slot: 'shared', kind: 'lora' };
const SHARED_FULL: PolicySlot = { name: 'shared', slot: 'model', kind: 'full' };

export function roleSlots(mode: Mode): RoleSlots {
  switch (mode) {
    case 'bipolicy':
      return { attacker: ATTACKER, defender: DEFENDER, trained: [ATTACKER, DEFENDER] };
    case 'shared-lora':
      return { attacker: SHARED_LORA, defender: SHARED_LORA, trained: [SHARED_LORA] };
    case 'shared-full':
      return { attacker: SHARED_FULL, defender: SHARED_FULL, trained: [SHARED_FULL] };
    case 'attacker-only':
      return { attacker: ATTACKER, defender: null, trained: [ATTACKER] };
    case 'defender-only':
      return { attacker: null, defender: DEFENDER, trained: [DEFENDER] };
  }
}

/** The order slots are shown in: the roles first, then the shared adapter, then full weights. */
export const SLOT_ORDER: readonly AdapterSlot[] = ['attacker', 'defender', 'shared', 'model'];

export interface SavedSlot {
  slot: string;
  kind: WeightsKind;
  dir: string;
}

/**
 * The weights saved in a round: every folder holding a PEFT adapter, and `model/` when it holds a
 * model directory, in SLOT_ORDER (other folder names after, by name).
 */
export function savedSlots(runDir: string, round: number): SavedSlot[] {
  const roundDir = runLayout(runDir).round(round);
  const names = realSubfolders(roundDir);
  const rank = (name: string) => {
    const i = SLOT_ORDER.indexOf(name as AdapterSlot);
    return i < 0 ? SLOT_ORDER.length : i;
  };
  const out: SavedSlot[] = [];
  for (const slot of names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))) {
    const dir = path.join(roundDir, slot);
    if (isRegularFile(path.join(dir, SLOT_MARKER.lora))) out.push({ slot, kind: 'lora', dir });
    else if (slot === SHARED_FULL.slot && isRegularFile(path.join(dir, SLOT_MARKER.full))) out.push({ slot, kind: 'full', dir });
  }
  return out;
}
