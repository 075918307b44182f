/**
 * `--engine torch` for the one-shot commands (generate, score, sft): the same work through the
 * PyTorch engine, printed exactly as the built-in engine's result is.
 */
import { Command, Option } from 'commander';
import { TorchEngine } from '../engine/torch/torch-engine';

export interface EngineCliOptions {
  engine: 'ort' | 'torch';
  device?: string;
  dtype?: 'float32' | 'bfloat16' | 'float16';
  python?: string;
}

export function addEngineOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--engine <kind>', 'ort (built in) or torch (PyTorch + transformers + PEFT)').choices(['ort', 'torch']).default('ort'))
    .option('--device <device>', 'torch engine: cpu, cuda or cuda:N', 'cpu')
    .addOption(new Option('--dtype <dtype>', 'torch engine: weights and activations type').choices(['float32', 'bfloat16', 'float16']).default('float32'))
    .option('--python <py>', 'torch engine: its Python (default: the environment of absp torch setup)');
}

export function openTorchEngine(model: string, o: EngineCliOptions, extra: { microBatchTokens?: number } = {}): TorchEngine {
  return TorchEngine.open(model, { device: o.device, dtype: o.dtype, python: o.python, microBatchTokens: extra.microBatchTokens });
}
