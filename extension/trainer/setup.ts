/**
 * Builds what an experiment needs from its config: the engine, the judge, the seeds, the role prompts
 * and the round evaluator (exact game values in the sandbox, sampled and estimated elsewhere).
 */
import * as path from 'node:path';
import { RunConfig } from './run-config';
import { PolicyEngine } from '../engine/policy-engine';
import { TorchEngine } from '../engine/torch/torch-engine';
import { Evaluator, SampledEvaluator } from './round-evaluator';
import { ExperimentDeps, ExperimentOptions, ExperimentResult, estimatorSettings, gameSettings, optimizerSettings, runExperiment } from './experiment';
import { makeJudge, type ConfigOrigin } from './judges';
import { OrtEngine } from '../engine/ort-engine';
import { rolePrompts, type RolePrompts } from './role-prompts';
import { GameSeed, SeedPool, SeedsError, loadSeedsFile, sandboxSeeds } from './seed-pool';
import { SandboxEvaluator } from './sandbox-evaluator';
import { checkIfBuiltin } from '../sandbox/builtin';
import { HelpfulExample, loadHelpfulData, sandboxHelpfulData } from './helpful-data';

export function openEngine(c: RunConfig): PolicyEngine {
  checkIfBuiltin(c.model);
  if (c.engine.kind === 'torch') {
    const e = c.engine;
    // The engine's Python is the user's choice (ABSP_TORCH_PYTHON, the set-up environment), never the config's.
    return TorchEngine.open(c.model, {
      device: e.device,
      dtype: e.dtype,
      nproc: e.nproc,
      launcher: e.launcher,
      fsdp: e.fsdp,
      gradientCheckpointing: e.gradient_checkpointing,
      microBatchTokens: e.micro_batch_tokens,
      threads: e.threads,
    });
  }
  return OrtEngine.open(c.model, { threads: c.engine.threads });
}

export function worldSeeds(c: RunConfig, configDir: string): GameSeed[] {
  if (c.world.kind === 'sandbox') return sandboxSeeds();
  const own = loadSeedsFile(path.resolve(configDir, c.world.file));
  return c.world.include_sandbox ? [...own, ...sandboxSeeds()] : own;
}

/** True when the sandbox's exact game values apply: its world, its judge, no hidden thinking. */
export function exactValuesApply(c: RunConfig): boolean {
  return c.world.kind === 'sandbox' && c.judge.kind === 'sandbox' && !c.game.hidden_cot.defender && c.game.turns === 1;
}

/** `origin`: the user's own config, or a run directory's (whose judge endpoint must be approved). */
export function buildDeps(c: RunConfig, configDir: string, engine: PolicyEngine, origin: ConfigOrigin = { kind: 'user' }): ExperimentDeps {
  const seeds = worldSeeds(c, configDir);
  const prompts = rolePrompts(c.world.kind === 'sandbox' ? 'sandbox' : 'general', c.game.hidden_cot);
  checkSeedsFit(seeds, engine, prompts, c.game.max_new_tokens);
  const judge = makeJudge(c, origin);
  let evaluator: Evaluator;
  if (exactValuesApply(c)) {
    evaluator = new SandboxEvaluator({ engine, judge, prompts, game: gameSettings(c), samplesPerSeed: c.evaluation.attacker_samples_per_seed, seed: c.seed });
  } else {
    evaluator = new SampledEvaluator({
      engine,
      judge,
      prompts,
      seeds,
      game: gameSettings(c),
      samplesPerSeed: c.evaluation.attacker_samples_per_seed,
      bestResponseSteps: c.evaluation.best_response_steps,
      estimator: estimatorSettings(c),
      optimizer: optimizerSettings(c, 'attacker'),
      lora: { rank: c.lora.rank, alpha: c.lora.alpha, targets: c.lora.targets },
      seed: c.seed,
    });
  }
  let helpful: HelpfulExample[] = [];
  if (c.rl.helpful_sft.coef > 0) {
    if (c.rl.helpful_sft.file) helpful = loadHelpfulData(path.resolve(configDir, c.rl.helpful_sft.file));
    else if (c.world.kind === 'sandbox') helpful = sandboxHelpfulData();
  }
  return { engine, judge, evaluator, prompts, pool: new SeedPool(seeds), helpful };
}

/**
 * Every seed from a file must leave room, in the model's context, for the answer budget of the role
 * that reads it first; a seed that does not is refused at the start, naming its file and line (during
 * the game each row's budget is its own, so one long seed would otherwise only cut its own answers).
 */
export function checkSeedsFit(seeds: readonly GameSeed[], engine: PolicyEngine, prompts: RolePrompts, maxNew: { attacker: number; defender: number }): void {
  const context = engine.info.maxPositions;
  const probe: GameSeed = { id: 'probe', prompt: '', harmful: true, source: 'probe' };
  const overhead = {
    attacker: engine.encodeChat(prompts.attacker(probe, []), true).length,
    defender: engine.encodeChat(prompts.defender([''], []), true).length,
  };
  for (const seed of seeds) {
    if (seed.source === 'sandbox') continue;
    for (const role of ['attacker', 'defender'] as const) {
      // A token holds at least one byte: a seed this short fits without encoding it.
      if (overhead[role] + Buffer.byteLength(seed.prompt) + 8 + maxNew[role] <= context) continue;
      const ids = role === 'attacker' ? engine.encodeChat(prompts.attacker(seed, []), true) : engine.encodeChat(prompts.defender([seed.prompt], []), true);
      if (ids.length + maxNew[role] > context) {
        throw new SeedsError(
          `${seed.source}:${seed.id}: the seed makes a ${role} prompt of ${ids.length} tokens; with game.max_new_tokens.${role} = ${maxNew[role]} that is more than the model's context of ${context} tokens (shorten the seed or the budget)`,
        );
      }
    }
  }
}

/**
 * Runs one experiment on an engine and judge of its own (the command line, a sweep's runs, the
 * acceptance tests): opens the engine the config names, builds the judge, seeds and evaluator, runs,
 * and closes judge and engine whatever happens.
 */
export async function runWithOwnEngine(
  config: RunConfig,
  configDir: string,
  options: Omit<ExperimentOptions, 'config' | 'deps'> = {},
  origin: ConfigOrigin = { kind: 'user' },
): Promise<ExperimentResult> {
  const engine = openEngine(config);
  let deps: ExperimentDeps;
  try {
    deps = buildDeps(config, configDir, engine, origin);
  } catch (e) {
    await engine.close();
    throw e;
  }
  try {
    return await runExperiment({ ...options, config, deps });
  } finally {
    await deps.judge.close();
    await engine.close();
  }
}
