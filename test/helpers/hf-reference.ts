/**
 * Real transformers and PEFT as the reference (test/reference/hf_reference.py), run in the engine's
 * Python environment: random checkpoints and adapters written by the libraries themselves, and
 * their float32 log-probs and greedy continuations. Jobs go in one call, so transformers is
 * imported once.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { findEnginePython, missingEnvironmentMessage } from '../../extension/engine/torch/python-env';

const SCRIPT = path.resolve(__dirname, '..', 'reference', 'hf_reference.py');

/** The engine's Python (torch, transformers, peft, safetensors), or null with the reason. */
export function transformersPython(): { python: string | null; reason: string } {
  const python = findEnginePython();
  return python ? { python, reason: '' } : { python: null, reason: missingEnvironmentMessage() };
}

export type HfJob =
  /** A random checkpoint: transformers config fields over small defaults (vocab 96, hidden 32, 2 layers, 4 heads / 2 KV). */
  | { op: 'make'; out: string; arch?: 'llama' | 'qwen2'; seed?: number; config?: Record<string, unknown> }
  | { op: 'adapter'; model: string; out: string; targets: string[]; rank?: number; alpha?: number; seed?: number }
  | { op: 'run'; model: string; rows?: number[][]; greedy?: number[][]; max_new_tokens?: number; eos?: number[]; pad?: number; adapter?: string };

export interface HfRun {
  logprobs: (number | null)[][];
  greedy: number[][];
}

/** Runs the jobs in order; results in the same order (a run job's is an HfRun). */
export function hfReference(python: string, jobs: HfJob[]): unknown[] {
  const r = spawnSync(python, [SCRIPT], {
    input: JSON.stringify(jobs),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 1_800_000,
    env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error', ABSP_REFERENCE_THREADS: '2' },
  });
  if (r.status !== 0) throw new Error(`hf_reference.py failed (${r.status ?? r.signal}): ${(r.stderr ?? '').slice(-3000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as unknown[];
}

export function maxAbsDiff(a: (number | null)[][], b: (number | null)[][]): number {
  let worst = 0;
  a.forEach((row, r) => {
    if (row.length !== b[r].length) throw new Error(`row ${r}: ${row.length} vs ${b[r].length} tokens`);
    row.forEach((x, i) => {
      const y = b[r][i];
      if (x === null || y === null) {
        if (x !== y) throw new Error(`row ${r}[${i}]: ${x} vs ${y}`);
        return;
      }
      worst = Math.max(worst, Math.abs(x - y));
    });
  });
  return worst;
}
