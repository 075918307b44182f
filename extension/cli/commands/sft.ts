import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { appendLine, writeJsonAtomic } from '../../util/atomic';
import { LORA_TARGETS, LoraTarget } from '../../engine/model/model-config';
import { loadCheckpoint, saveCheckpoint } from '../../engine/model/checkpoint';
import { resolveModelDir } from '../../engine/model/model-dir';
import { TextTokenizer, copyTokenizerFiles } from '../../engine/model/tokenizer';
import { LoraAdapter, createAdapter, loadAdapter, saveAdapter } from '../../engine/lora/adapter';
import { Optimizer, OptimizerConfig, defaultOptimizerConfig } from '../../engine/train/optimizer';
import { loadSftData } from '../../engine/train/sft-data';
import { runSft } from '../../engine/train/sft';
import { latestCheckpoint, writeCheckpoint } from '../../engine/train/checkpoint-dir';
import { floatOption, intOption, listOption } from '../options';
import { progressBar } from '../progress';
import { addEngineOptions, openTorchEngine } from '../engine-options';
import { SFT_POLICY, runEngineSft, savedPosition } from '../../engine/policy-sft';
import { writeCheckpointAsync } from '../../engine/train/checkpoint-dir';
import type { OptimizerSettings } from '../../engine/policy-engine';

export function sftCommand(): Command {
  return addEngineOptions(new Command('sft'))
    .description('supervised fine-tuning of a LoRA adapter (or, with --full, of every weight) on a JSONL file')
    .requiredOption('--model <dir>', 'Hugging Face model directory (or builtin:sandbox)')
    .requiredOption('--data <file>', 'JSONL lines of {"text"}, {"ids"} or {"messages"}')
    .requiredOption('--out <dir>', 'output folder: the adapter (or full model), loss curve and checkpoints')
    .option('--adapter-init <dir>', 'start from this PEFT adapter instead of a new one')
    .option('--rank <r>', 'LoRA rank of a new adapter', intOption('--rank', 1), 8)
    .option('--alpha <a>', 'LoRA alpha of a new adapter', floatOption('--alpha', 0), 16)
    .option('--targets <list>', `modules a new adapter targets (${LORA_TARGETS.join(',')})`, listOption, ['q_proj', 'k_proj', 'v_proj', 'o_proj'])
    .option('--full', 'train every weight and write a Hugging Face model directory', false)
    .option('--optimizer <kind>', 'adamw or sgd', 'adamw')
    .option('--lr <x>', 'peak learning rate', floatOption('--lr', 0))
    .option('--weight-decay <x>', 'AdamW decoupled weight decay', floatOption('--weight-decay', 0))
    .option('--clip-norm <x>', 'clip the global gradient norm (default 1.0 for adamw, none for sgd)', floatOption('--clip-norm', 0))
    .option('--warmup <n>', 'linear warmup steps', intOption('--warmup', 0), 0)
    .option('--schedule <kind>', 'constant, linear or cosine decay after warmup', 'constant')
    .option('--steps <n>', 'optimiser steps', intOption('--steps', 1), 100)
    .option('--batch-size <b>', 'lines per step (all of them if larger than the file)', intOption('--batch-size', 1), 8)
    .option('--micro-batch-tokens <n>', 'padded tokens per forward/backward pass', intOption('--micro-batch-tokens', 1), 16384)
    .option('--save-every <n>', 'checkpoint every n steps (and at the end)', intOption('--save-every', 1), 50)
    .option('--seed <s>', 'seed for data order and adapter initialisation', intOption('--seed', 0), 0)
    .option('--resume', 'continue from the checkpoint in --out', false)
    .action(async (o) => {
      if (o.optimizer !== 'adamw' && o.optimizer !== 'sgd') throw new Error(`--optimizer must be adamw or sgd, got ${JSON.stringify(o.optimizer)}`);
      if (!['constant', 'linear', 'cosine'].includes(o.schedule)) throw new Error(`--schedule must be constant, linear or cosine, got ${JSON.stringify(o.schedule)}`);
      for (const t of o.targets) if (!LORA_TARGETS.includes(t)) throw new Error(`--targets: unknown module ${JSON.stringify(t)} (choose from ${LORA_TARGETS.join(', ')})`);
      const modelDir = resolveModelDir(o.model);
      if (o.engine === 'torch') {
        // The PyTorch engine reads any architecture it supports; only the sizes are needed here.
        const raw = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8')) as { vocab_size: number; max_position_embeddings: number };
        const tok = fs.existsSync(path.join(modelDir, 'tokenizer.json')) ? TextTokenizer.load(modelDir) : null;
        const data = loadSftData(path.resolve(o.data), { tokenizer: tok, maxLength: raw.max_position_embeddings, vocabSize: raw.vocab_size });
        const outDir = path.resolve(o.out);
        fs.mkdirSync(outDir, { recursive: true });
        const cps = path.join(outDir, 'checkpoints');
        const from = o.resume ? latestCheckpoint(cps) : null;
        if (o.resume && !from) throw new Error(`${cps}: no checkpoint to resume from`);
        await torchSft(o, modelDir, data, outDir, cps, from);
        return;
      }
      const ckpt = loadCheckpoint(modelDir);
      const tokenizer = fs.existsSync(path.join(modelDir, 'tokenizer.json')) ? TextTokenizer.load(modelDir) : null;
      const examples = loadSftData(path.resolve(o.data), { tokenizer, maxLength: ckpt.config.maxPositions, vocabSize: ckpt.config.vocabSize });
      const out = path.resolve(o.out);
      const checkpoints = path.join(out, 'checkpoints');
      fs.mkdirSync(out, { recursive: true });

      const resumeFrom = o.resume ? latestCheckpoint(checkpoints) : null;
      if (o.resume && !resumeFrom) throw new Error(`${checkpoints}: no checkpoint to resume from`);
      let optimizer: Optimizer;
      let adapter: LoraAdapter | null = null;
      let weights = ckpt.weights;
      if (resumeFrom) {
        optimizer = Optimizer.load(resumeFrom, 'optimizer');
        if (o.full) weights = loadCheckpoint(path.join(resumeFrom, 'model')).weights;
        else adapter = loadAdapter(path.join(resumeFrom, 'adapter'), ckpt.config);
      } else {
        const config: OptimizerConfig = defaultOptimizerConfig(o.optimizer, o.lr ?? (o.optimizer === 'sgd' ? 0.01 : 1e-4), o.steps);
        if (o.weightDecay !== undefined) config.weightDecay = o.weightDecay;
        if (o.clipNorm !== undefined) config.clipNorm = o.clipNorm;
        config.schedule = { kind: o.schedule, warmupSteps: o.warmup, totalSteps: o.steps, minLrRatio: 0 };
        optimizer = new Optimizer(config);
        fs.rmSync(path.join(out, 'loss.jsonl'), { force: true });
        if (!o.full) {
          adapter = o.adapterInit
            ? loadAdapter(path.resolve(o.adapterInit), ckpt.config)
            : createAdapter(ckpt.config, { rank: o.rank, alpha: o.alpha, targets: o.targets as LoraTarget[], seed: o.seed });
        }
      }
      const saveResult = (dir: string) => {
        if (adapter) saveAdapter(dir, adapter, modelDir, ckpt.config);
        else {
          saveCheckpoint(dir, ckpt.config, weights);
          copyTokenizerFiles(modelDir, dir);
        }
      };
      const checkpoint = () =>
        writeCheckpoint(checkpoints, `step-${String(optimizer.position).padStart(7, '0')}`, (dir) => {
          optimizer.save(dir, 'optimizer');
          saveResult(path.join(dir, adapter ? 'adapter' : 'model'));
        });

      const bar = progressBar(o.steps, 'sft');
      bar.update(optimizer.position, { detail: '' });
      let skipped = 0;
      await runSft({
        config: ckpt.config,
        weights,
        examples,
        target: adapter ? { kind: 'lora', adapter } : { kind: 'full' },
        optimizer,
        steps: o.steps,
        batchSize: o.batchSize,
        microBatchTokens: o.microBatchTokens,
        seed: o.seed,
        onStep: (r) => {
          appendLine(path.join(out, 'loss.jsonl'), JSON.stringify({ step: r.step, loss: r.loss, lr: r.lr, grad_norm: r.gradNorm, tokens: r.tokens, skipped: r.skipped, seconds: r.seconds }));
          if (r.skipped) {
            skipped++;
            process.stderr.write(`\nsft: step ${r.step} skipped: non-finite loss or gradient (loss ${r.loss})\n`);
          }
          bar.update(r.step, { detail: `loss ${r.loss.toFixed(4)}` });
          if (r.step % o.saveEvery === 0 && r.step < o.steps) checkpoint();
        },
      });
      bar.stop();
      checkpoint();
      saveResult(out);
      writeJsonAtomic(path.join(out, 'sft.json'), { model: modelDir, data: path.resolve(o.data), steps: o.steps, batch_size: o.batchSize, optimizer: optimizer.config, skipped_steps: skipped, seed: o.seed, full: o.full });
      process.stderr.write(`sft: wrote ${adapter ? 'adapter' : 'model'} to ${out} (loss curve: ${path.join(out, 'loss.jsonl')})\n`);
    });
}

/** The same training through the PyTorch engine: same batches, loss, optimiser and files. */
async function torchSft(o: Record<string, any>, modelDir: string, examples: ReturnType<typeof loadSftData>, out: string, checkpoints: string, resumeFrom: string | null): Promise<void> {
  const kind = o.full ? 'full' : 'lora';
  const defaults = defaultOptimizerConfig(o.optimizer, o.lr ?? (o.optimizer === 'sgd' ? 0.01 : 1e-4), o.steps);
  const settings: OptimizerSettings = {
    kind: o.optimizer,
    lr: defaults.lr,
    weightDecay: o.weightDecay ?? defaults.weightDecay,
    clipNorm: o.clipNorm ?? defaults.clipNorm,
    warmupSteps: o.warmup,
    schedule: { kind: o.schedule, totalSteps: o.steps, minLrRatio: 0 },
  };
  const engine = openTorchEngine(modelDir, o as never, { microBatchTokens: o.microBatchTokens });
  try {
    let position = 0;
    if (resumeFrom) {
      await engine.loadPolicy(SFT_POLICY, path.join(resumeFrom, o.full ? 'model' : 'adapter'), kind);
      await engine.loadOptimizer(SFT_POLICY, resumeFrom);
      position = savedPosition(resumeFrom);
    } else {
      fs.rmSync(path.join(out, 'loss.jsonl'), { force: true });
      await engine.createPolicy(SFT_POLICY, { kind, rank: o.rank, alpha: o.alpha, targets: o.targets, seed: o.seed, init: o.adapterInit ? path.resolve(o.adapterInit) : undefined });
    }
    const checkpoint = (step: number) =>
      writeCheckpointAsync(checkpoints, `step-${String(step).padStart(7, '0')}`, async (dir) => {
        await engine.saveOptimizer(SFT_POLICY, dir);
        await engine.savePolicy(SFT_POLICY, path.join(dir, o.full ? 'model' : 'adapter'));
      });
    const bar = progressBar(o.steps, 'sft');
    bar.update(position, { detail: '' });
    let skipped = 0;
    const final = await runEngineSft({
      engine,
      examples,
      optimizer: settings,
      steps: o.steps,
      batchSize: o.batchSize,
      seed: o.seed,
      position,
      onStep: async (r) => {
        appendLine(path.join(out, 'loss.jsonl'), JSON.stringify({ step: r.step, loss: r.loss, lr: r.lr, grad_norm: r.gradNorm, tokens: r.tokens, skipped: r.skipped, seconds: r.seconds }));
        if (r.skipped) {
          skipped++;
          process.stderr.write(`\nsft: step ${r.step} skipped: non-finite loss or gradient (loss ${r.loss})\n`);
        }
        bar.update(r.step, { detail: `loss ${r.loss.toFixed(4)}` });
        if (r.step % o.saveEvery === 0 && r.step < o.steps) await checkpoint(r.step);
      },
    });
    bar.stop();
    await checkpoint(final);
    await engine.savePolicy(SFT_POLICY, out);
    const config = { ...defaults, kind: o.optimizer, weightDecay: settings.weightDecay, clipNorm: settings.clipNorm, schedule: { kind: o.schedule, warmupSteps: o.warmup, totalSteps: o.steps, minLrRatio: 0 } };
    writeJsonAtomic(path.join(out, 'sft.json'), { model: modelDir, data: path.resolve(o.data), steps: o.steps, batch_size: o.batchSize, optimizer: config, skipped_steps: skipped, seed: o.seed, full: o.full, engine: 'torch' });
    process.stderr.write(`sft: wrote ${o.full ? 'model' : 'adapter'} to ${out} (loss curve: ${path.join(out, 'loss.jsonl')})\n`);
  } finally {
    await engine.close();
  }
}
