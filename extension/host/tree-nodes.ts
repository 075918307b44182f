/**
 * The nodes of the Runs and Annotations views, computed from the run directories without `vscode`
 * (the views map them to TreeItems). Commands receive these nodes as their argument when invoked from
 * a view, so they carry the run directory and whatever else the command needs.
 */
import * as fs from 'node:fs';
import { readPeftConfig } from '../engine/lora/adapter';
import { RunReader, runLayout, savedSlots, type Annotation, type EffectiveStatus } from '../rundir';
import type { CatalogEntry } from './run-catalog';

export interface RunNode {
  kind: 'run';
  dir: string;
  label: string;
  status: EffectiveStatus | null;
  description: string;
  tooltip: string;
  error: string | null;
}

export interface RoundNode {
  kind: 'round';
  dir: string;
  round: number;
  /** False for the round being played now (no round.json yet). */
  complete: boolean;
  /** Valid exchanges of a complete round (round.json counts them); null while it is played. */
  exchanges: number | null;
  description: string;
}

export interface AdapterNode {
  kind: 'adapter';
  dir: string;
  round: number;
  slot: string;
  path: string;
  description: string;
}

export interface TranscriptNode {
  kind: 'transcript';
  dir: string;
  round: number;
  path: string;
  /** "12 exchanges" for a complete round (from round.json), "7 so far" for the round being played. */
  description: string;
}

export interface AnnotationRunNode {
  kind: 'annotation-run';
  dir: string;
  label: string;
  count: number;
}

export interface AnnotationNode {
  kind: 'annotation';
  dir: string;
  annotation: Annotation;
}

export type TreeNode = RunNode | RoundNode | AdapterNode | TranscriptNode | AnnotationRunNode | AnnotationNode;

/** The context value the package.json menus match on: "run running", "run resumable", … */
export function contextValue(node: TreeNode): string {
  if (node.kind !== 'run') return node.kind;
  if (node.error) return 'run broken';
  if (node.status === 'running') return 'run running';
  if (node.status === 'completed') return 'run done';
  return 'run resumable';
}

export function runNode(e: CatalogEntry, progress?: string): RunNode {
  const s = e.summary;
  if (s.error) {
    return { kind: 'run', dir: e.dir, label: s.label, status: null, description: `cannot open: ${s.error.kind}`, tooltip: s.error.message, error: s.error.message };
  }
  const status = e.status ?? 'interrupted';
  const rounds = `${s.rounds_completed}/${s.rounds_planned} rounds`;
  const info = e.info!;
  // The built-in engine is the default and goes unsaid; another engine is named with its device.
  const engine = info.engine !== 'ort' ? [info.engine, info.device].filter(Boolean).join(' ') : '';
  const parts = [status === 'running' && progress ? progress : status, rounds, s.mode ?? '', engine];
  const tooltip = [
    `${info.name} (${info.mode}), ${status}`,
    `rounds: ${info.rounds_completed} of ${info.rounds_planned}; attempt ${info.attempt}`,
    `base model: ${info.base_model}; engine: ${info.engine}${info.device ? ` on ${info.device}` : ''}${info.dtype ? ` (${info.dtype})` : ''}`,
    info.reason ? `reason: ${info.reason}` : '',
    status === 'interrupted' ? 'The trainer process is gone without recording an end; resume continues from the last complete round.' : '',
    e.dir,
  ]
    .filter(Boolean)
    .join('\n');
  return { kind: 'run', dir: e.dir, label: s.label, status, description: parts.filter(Boolean).join(' · '), tooltip, error: null };
}

function fmt(v: number | null | undefined): string {
  return v === null || v === undefined ? '–' : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2);
}

/** The rounds of a run: complete ones, and the round being played when the run is live. */
export function roundNodes(run: RunNode): RoundNode[] {
  if (run.error) return [];
  let reader: RunReader;
  try {
    reader = RunReader.open(run.dir);
  } catch {
    return [];
  }
  const rounds = reader.rounds();
  const nodes: RoundNode[] = rounds.map((r) => {
    const m = r.metrics;
    const bits = [r.round === 0 ? 'initial adapters' : `${r.exchanges} exchanges`];
    if (m.nash_gap !== undefined) bits.push(`Nash gap ${fmt(m.nash_gap)}`);
    if (m['asr/trained_attacker'] !== undefined) bits.push(`ASR ${fmt(m['asr/trained_attacker'])}`);
    return { kind: 'round', dir: run.dir, round: r.round, complete: true, exchanges: r.exchanges, description: bits.join(' · ') };
  });
  const last = rounds.length ? rounds[rounds.length - 1].round : -1;
  const playing = reader.transcriptRounds().filter((r) => r > last);
  for (const r of playing) nodes.push({ kind: 'round', dir: run.dir, round: r, complete: false, exchanges: null, description: run.status === 'running' ? 'in progress' : 'incomplete (not saved)' });
  return nodes;
}

/** A round's saved weights (PEFT adapters, or full weights) and its transcript. */
export function roundChildren(round: RoundNode): (AdapterNode | TranscriptNode)[] {
  const out: (AdapterNode | TranscriptNode)[] = [];
  if (round.complete) {
    for (const s of savedSlots(round.dir, round.round)) {
      const description = s.kind === 'full' ? 'full weights' : describeAdapter(s.dir);
      if (description) out.push({ kind: 'adapter', dir: round.dir, round: round.round, slot: s.slot, path: s.dir, description });
    }
  }
  const transcript = runLayout(round.dir).transcript(round.round);
  if (fs.existsSync(transcript)) {
    const description = round.complete && round.exchanges !== null ? `${round.exchanges} exchanges` : `${countLines(transcript)} so far`;
    out.push({ kind: 'transcript', dir: round.dir, round: round.round, path: transcript, description });
  }
  return out;
}

function describeAdapter(dir: string): string | null {
  try {
    const c = readPeftConfig(dir);
    return `LoRA r=${c.r}, alpha=${c.lora_alpha}`;
  } catch {
    return null;
  }
}

/** Complete lines of a live transcript (cheap: the view redraws often while a run is live). */
function countLines(file: string): number {
  try {
    let n = 0;
    for (const b of fs.readFileSync(file)) if (b === 10) n += 1;
    return n;
  } catch {
    return 0;
  }
}
