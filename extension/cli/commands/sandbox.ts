/** `absp sandbox build` and `absp sandbox profile`: the built-in synthetic world's base model. */
import * as path from 'node:path';
import { Command } from 'commander';
import { buildSandbox, DEFAULT_PLAN, DEFAULT_SHAPE } from '../../sandbox/build';
import { checkSandboxModel, sandboxModelDir } from '../../sandbox/builtin';
import { DEFAULT_CORPUS_DIALOGUES } from '../../sandbox/corpus';
import { formatProfile, profileModelDir, worldSeedOf } from '../../sandbox/profile';
import { DEFAULT_SANDBOX_SEED } from '../../sandbox/targets';
import { floatOption, intOption } from '../options';
import { progressBar } from '../progress';

function buildCommand(): Command {
  return new Command('build')
    .description('regenerate the corpus and tokenizer and pretrain the built-in sandbox model from scratch')
    .option('--seed <s>', 'world seed: corpus, weak spots, initialisation and data order', intOption('--seed', 0), DEFAULT_SANDBOX_SEED)
    .option('--out <dir>', 'model directory to (re)place', sandboxModelDir())
    .option('--steps <n>', 'optimiser steps', intOption('--steps', 1), DEFAULT_PLAN.steps)
    .option('--dialogues <n>', 'corpus size', intOption('--dialogues', 1), DEFAULT_CORPUS_DIALOGUES)
    .option('--batch-size <b>', 'dialogues per step', intOption('--batch-size', 1), DEFAULT_PLAN.batchSize)
    .option('--lr <x>', 'peak AdamW learning rate', floatOption('--lr', 0), DEFAULT_PLAN.lr)
    .option('--warmup <n>', 'linear warmup steps before the cosine decay', intOption('--warmup', 0), DEFAULT_PLAN.warmupSteps)
    .option('--opener-weight <w>', 'loss weight of the first token of each answer', floatOption('--opener-weight', 0), DEFAULT_PLAN.openerWeight)
    .option('--hidden-size <n>', 'hidden size', intOption('--hidden-size', 8), DEFAULT_SHAPE.hiddenSize)
    .option('--intermediate-size <n>', 'MLP size', intOption('--intermediate-size', 1), DEFAULT_SHAPE.intermediateSize)
    .option('--layers <n>', 'decoder layers', intOption('--layers', 1), DEFAULT_SHAPE.numLayers)
    .option('--threads <n>', 'ONNX Runtime threads (default: every core)', intOption('--threads', 1))
    .option('--profile-samples <k>', 'attacker rewrites per seed sampled for the profile', intOption('--profile-samples', 1), 16)
    .option('--no-profile', 'skip measuring the profile')
    .option('--no-exact-attacker', "skip the exact attacker values in the profile (the slowest part)")
    .action(async (o) => {
      if (o.warmup >= o.steps) throw new Error(`--warmup (${o.warmup}) must be smaller than --steps (${o.steps})`);
      const out = path.resolve(o.out);
      const bar = progressBar(o.steps, 'sandbox build');
      const result = await buildSandbox({
        seed: o.seed,
        out,
        dialogues: o.dialogues,
        shape: { hiddenSize: o.hiddenSize, intermediateSize: o.intermediateSize, numLayers: o.layers },
        plan: { steps: o.steps, batchSize: o.batchSize, lr: o.lr, warmupSteps: o.warmup, openerWeight: o.openerWeight },
        threads: o.threads,
        profile: o.profile,
        profileSamplesPerSeed: o.profileSamples,
        exactAttacker: o.exactAttacker,
        onStep: (r) => bar.update(r.step, { detail: `loss ${r.loss.toFixed(4)}` }),
        onPhase: (phase) => {
          if (phase === 'profile' || phase === 'writing') bar.stop();
          if (phase === 'profile' && o.profile) process.stderr.write('sandbox build: measuring the profile\n');
        },
      });
      const p = result.provenance;
      process.stderr.write(
        `sandbox build: wrote ${out} (${p.shape.parameters.toLocaleString('en-US')} parameters, final loss ${p.training.finalLoss.toFixed(4)}, ` +
          `${Math.round(p.wallSeconds.total)} s)\n`,
      );
      if (p.profile) process.stdout.write(formatProfile(p.profile) + '\n');
    });
}

function profileCommand(): Command {
  return new Command('profile')
    .description('exact profile and game values of the sandbox base model (or base + defender adapter)')
    .option('--model <dir>', 'sandbox model directory (default: the built-in one)')
    .option('--adapter <dir>', 'defender LoRA adapter (PEFT) on the base')
    .option('--attacker <dir>', 'attacker LoRA adapter (PEFT) for the attacker gap and NashConv (default: the base as attacker)')
    .option('--samples <k>', 'attacker rewrites sampled per seed', intOption('--samples', 1), 16)
    .option('--seed <s>', 'sampling seed', intOption('--seed', 0), 0)
    .option('--harmful-fraction <h>', 'weight of harmful seeds in game values (default: their share of the game seeds)', floatOption('--harmful-fraction', 0, 1))
    .option('--exact-attacker', "also compute the attacker's values exactly from its distribution over the grammar", false)
    .option('--thinking', 'the defender thinks before answering: estimate its rates by sampling', false)
    .option('--threads <n>', 'ONNX Runtime threads (default: every core)', intOption('--threads', 1))
    .option('--json', 'print one JSON object', false)
    .action(async (o) => {
      const dir = o.model ? path.resolve(o.model) : sandboxModelDir();
      checkSandboxModel(dir);
      const profile = await profileModelDir(dir, {
        adapter: o.adapter,
        attackerAdapter: o.attacker,
        samplesPerSeed: o.samples,
        seed: o.seed,
        harmfulFraction: o.harmfulFraction,
        thinking: o.thinking,
        exactAttacker: o.exactAttacker,
        threads: o.threads,
        worldSeed: worldSeedOf(dir),
      });
      process.stdout.write(o.json ? JSON.stringify(profile) + '\n' : formatProfile(profile) + '\n');
    });
}

export function sandboxCommand(): Command {
  const cmd = new Command('sandbox').description('the built-in synthetic red-teaming world and its base model');
  for (const sub of [buildCommand(), profileCommand()]) cmd.addCommand(sub.exitOverride());
  return cmd;
}
