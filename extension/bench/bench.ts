/**
 * `absp bench`: the built-in ONNX Runtime engine against the PyTorch engine (torch + transformers +
 * PEFT, extension/torch-engine, what users install), side by side in one run on this machine with
 * the same shapes, thread count and measuring method, reported as ratios. Every phase of either
 * engine runs in a fresh process so its peak memory is its own.
 */
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../engine/model/model-dir';
import { engineCwd, engineEnv, findEnginePython as findTorchPython } from '../engine/torch/python-env';
import { OrtPhaseSpec } from './ort-bench';

export interface BenchShape {
  name: string;
  config: Record<string, unknown>;
  batchSizes: number[];
  promptLen: number;
  newTokens: number;
  trainBatch: number;
  trainSeqLen: number;
}

const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

export const SHAPES: Record<string, BenchShape> = {
  // ~10M parameters (untied embeddings).
  '10M': {
    name: '10M',
    config: { vocab_size: 8192, hidden_size: 256, intermediate_size: 688, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, tie_word_embeddings: false, rope_theta: 10000, rms_norm_eps: 1e-6, max_position_embeddings: 1024 },
    batchSizes: [1, 8, 64],
    promptLen: 64,
    newTokens: 32,
    trainBatch: 8,
    trainSeqLen: 128,
  },
  // ~100M parameters (tied embeddings, Qwen-like GQA).
  '100M': {
    name: '100M',
    config: { vocab_size: 32000, hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 12, num_key_value_heads: 4, tie_word_embeddings: true, rope_theta: 1000000, rms_norm_eps: 1e-6, max_position_embeddings: 1024 },
    batchSizes: [1, 8, 64],
    promptLen: 64,
    newTokens: 16,
    trainBatch: 8,
    trainSeqLen: 128,
  },
  // For tests of the benchmark itself: seconds, not minutes.
  tiny: {
    name: 'tiny',
    config: { vocab_size: 256, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false, rope_theta: 10000, rms_norm_eps: 1e-6, max_position_embeddings: 256 },
    batchSizes: [1, 4],
    promptLen: 8,
    newTokens: 4,
    trainBatch: 2,
    trainSeqLen: 16,
  },
};

/**
 * A real model directory measured with its own weights (`absp bench --model DIR`): decode at batch
 * 1 and 32, prefill, the bipolicy batch and the LoRA step; the full-parameter step is left out.
 */
export function modelShape(dir: string): BenchShape & { model: string } {
  return { name: path.basename(path.resolve(dir)), model: path.resolve(dir), config: {}, batchSizes: [1, 8, 32], promptLen: 64, newTokens: 32, trainBatch: 8, trainSeqLen: 128 };
}

export interface BenchOptions {
  shapes: string[];
  /** Model directories measured after the shapes. */
  models?: string[];
  threads: number;
  repeats: number;
  warmup: number;
  rank: number;
  torch: boolean;
  log?: (line: string) => void;
}

export interface BenchRow {
  shape: string;
  measure: string;
  ort: number | null;
  torch: number | null;
  /** ORT ÷ PyTorch for throughput rows (higher is better); for memory rows, informational. */
  ratio: number | null;
  unit: string;
}

export interface BenchResult {
  machine: Record<string, unknown>;
  rows: BenchRow[];
  bipolicy: { shape: string; engine: 'ort' | 'torch'; mixed: number; sequential: number; ratio: number }[];
}

function runJson(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    // In the engine's own folder: a Python started in the user's working folder would import from it.
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: engineCwd() });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${path.basename(command)} ${args[0] ?? ''} exited with ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`));
      const line = out.trim().split('\n').filter(Boolean).pop() ?? '';
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`unexpected benchmark output: ${line.slice(0, 200)}`));
      }
    });
  });
}

function ortPhase(spec: OrtPhaseSpec): Promise<Record<string, unknown>> {
  const cli = path.join(packageRoot(), 'bin', 'absp.js');
  return runJson(process.execPath, [cli, 'bench', '--ort-phase', JSON.stringify(spec)], { ...process.env, ABSP_THREADS: String(spec.threads) });
}

/** One phase of the PyTorch engine's benchmark (absp_torch/bench.py), in its own process. */
function torchPhase(python: string, spec: OrtPhaseSpec): Promise<Record<string, unknown>> {
  const env = { ...engineEnv(), OMP_NUM_THREADS: String(spec.threads), MKL_NUM_THREADS: String(spec.threads) };
  return runJson(python, ['-m', 'absp_torch', 'bench', JSON.stringify({ ...spec, config: { model_type: 'qwen2', ...spec.config } })], env);
}

type Entry = { batch: number; tokens_per_s: number };
const at = (list: unknown, batch: number) => (list as Entry[] | undefined)?.find((e) => e.batch === batch)?.tokens_per_s ?? null;

export async function runBench(o: BenchOptions): Promise<BenchResult> {
  const log = o.log ?? (() => {});
  const python = o.torch ? findTorchPython() : null;
  const torchAvailable = python !== null;
  if (o.torch && !torchAvailable) log('bench: no PyTorch engine environment (run absp torch setup); PyTorch columns are empty');
  const rows: BenchRow[] = [];
  const bipolicy: BenchResult['bipolicy'] = [];
  let torchInfo: Record<string, unknown> = {};
  const shapes: (BenchShape & { model?: string })[] = o.shapes.map((name) => {
    const shape = SHAPES[name];
    if (!shape) throw new Error(`unknown benchmark shape ${JSON.stringify(name)} (choose from ${Object.keys(SHAPES).join(', ')})`);
    return shape;
  });
  for (const dir of o.models ?? []) shapes.push(modelShape(dir));
  for (const shape of shapes) {
    const name = shape.name;
    const spec = (phase: OrtPhaseSpec['phase']): OrtPhaseSpec => ({
      config: shape.config,
      ...(shape.model ? { model: shape.model } : {}),
      phase,
      batchSizes: shape.batchSizes,
      promptLen: shape.promptLen,
      newTokens: shape.newTokens,
      trainBatch: shape.trainBatch,
      trainSeqLen: shape.trainSeqLen,
      rank: o.rank,
      targets: [...ALL_TARGETS],
      threads: o.threads,
      warmup: o.warmup,
      repeats: o.repeats,
      seed: 0,
    });
    const add = (measure: string, ort: number | null, torch: number | null, unit = 'tokens/s') =>
      rows.push({ shape: name, measure, ort, torch, ratio: ort !== null && torch !== null && torch > 0 ? ort / torch : null, unit });

    log(`bench ${name}: inference (ONNX Runtime)`);
    const inf = await ortPhase(spec('inference'));
    let tInf: Record<string, unknown> = {};
    if (torchAvailable) {
      log(`bench ${name}: inference (PyTorch)`);
      tInf = await torchPhase(python!, spec('inference'));
      torchInfo = { torch_version: tInf.torch_version, blas: tInf.blas };
    }
    const small = shape.batchSizes[0];
    const large = shape.batchSizes[shape.batchSizes.length - 1];
    const mid = shape.batchSizes[Math.floor(shape.batchSizes.length / 2)];
    add(`decode, batch ${small}`, at(inf.decode, small), at(tInf.decode, small));
    add(`decode, batch ${large}`, at(inf.decode, large), at(tInf.decode, large));
    add(`prefill, batch ${mid} × ${shape.promptLen}`, at(inf.prefill, mid), at(tInf.prefill, mid));

    log(`bench ${name}: bipolicy batch vs two passes (ONNX Runtime)`);
    const bi = await ortPhase(spec('bipolicy'));
    const mixed = (bi.bipolicy as Entry).tokens_per_s;
    const sequential = (bi.sequential as Entry).tokens_per_s;
    bipolicy.push({ shape: name, engine: 'ort', mixed, sequential, ratio: mixed / sequential });
    if (torchAvailable) {
      log(`bench ${name}: bipolicy batch vs two passes (PyTorch)`);
      const tb = await torchPhase(python!, spec('bipolicy'));
      const tm = (tb.bipolicy as Entry).tokens_per_s;
      const ts = (tb.sequential as Entry).tokens_per_s;
      bipolicy.push({ shape: name, engine: 'torch', mixed: tm, sequential: ts, ratio: tm / ts });
      add(`bipolicy rollout, batch ${large}`, mixed, tm);
    }

    for (const phase of shape.model ? (['lora'] as const) : (['lora', 'full'] as const)) {
      log(`bench ${name}: ${phase} training step (ONNX Runtime)`);
      const r = await ortPhase(spec(phase));
      let t: Record<string, unknown> = {};
      if (torchAvailable) {
        log(`bench ${name}: ${phase} training step (PyTorch)`);
        t = await torchPhase(python!, spec(phase));
      }
      const key = phase === 'lora' ? 'lora_step' : 'full_step';
      const label = phase === 'lora' ? `LoRA step (r=${o.rank}, all linear)` : 'full-parameter step';
      add(`${label}, ${shape.trainBatch} × ${shape.trainSeqLen}`, (r[key] as Entry | undefined)?.tokens_per_s ?? null, (t[key] as Entry | undefined)?.tokens_per_s ?? null);
      add(`${label}: peak memory`, (r.peak_rss_mb as number) ?? null, (t.peak_rss_mb as number | undefined) ?? null, 'MB');
    }
  }
  return {
    machine: {
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      threads: o.threads,
      node: process.version,
      onnxruntime: require('onnxruntime-node/package.json').version,
      ...torchInfo,
      date: new Date().toISOString(),
    },
    rows,
    bipolicy,
  };
}

export function formatBench(r: BenchResult): string {
  const lines: string[] = [];
  const fmt = (v: number | null) => (v === null ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(1));
  lines.push(`machine: ${r.machine.cpus} cores (${r.machine.cpu}), ${r.machine.threads} threads, node ${r.machine.node}, onnxruntime ${r.machine.onnxruntime}, torch ${r.machine.torch_version ?? '-'} (${r.machine.blas ? JSON.stringify(r.machine.blas) : 'no PyTorch'})`);
  lines.push('');
  const width = Math.max(5, ...r.rows.map((row) => row.shape.length));
  lines.push(['shape'.padEnd(width), 'measure'.padEnd(44), 'ORT'.padStart(10), 'PyTorch'.padStart(10), 'ORT/PyTorch'.padStart(12), 'unit'].join('  '));
  for (const row of r.rows) {
    const ratio = row.ratio === null ? '-' : row.unit === 'MB' ? `${row.ratio.toFixed(2)}x` : `${row.ratio.toFixed(2)}x`;
    lines.push([row.shape.padEnd(width), row.measure.padEnd(44), fmt(row.ort).padStart(10), fmt(row.torch).padStart(10), ratio.padStart(12), row.unit].join('  '));
  }
  lines.push('');
  lines.push('bipolicy batch (attacker and defender rows in one pass) against two sequential single-adapter passes, rollout tokens/s:');
  for (const b of r.bipolicy) lines.push(`  ${b.shape.padEnd(width)} ${(b.engine === 'ort' ? 'ORT' : 'PyTorch').padEnd(8)} one pass ${fmt(b.mixed)}  two passes ${fmt(b.sequential)}  ratio ${b.ratio.toFixed(2)}x`);
  return lines.join('\n');
}
