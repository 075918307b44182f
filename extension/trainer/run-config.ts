/**
 * The run configuration: one JSON file describing an experiment, validated with a schema so a wrong
 * key or value is named in the error. Every field has a default; `{}` is the built-in sandbox ABSP
 * experiment (the main job).
 */
import * as path from 'node:path';
import { z } from 'zod';
import { LORA_TARGETS } from '../engine/model/model-config';
import { ModeSchema, RoleSchema } from '../rundir/schema';
import { readTextFile, UnsafeFileError } from '../util/safe-fs';

/** A run config is a small document. */
const MAX_CONFIG_BYTES = 1024 * 1024;

const fraction = z.number().min(0).max(1);
/**
 * Every size a config controls has a bound, so a config from someone else (a run directory's
 * config.json) costs an error naming the field, never gigabytes or hours. The bounds are far above
 * what an experiment on this tool's models uses.
 */
const int = (min: number, max: number) => z.number().int().min(min).max(max);
const positiveInt = (max: number) => int(1, max);
/** A finite, non-negative number below `max` (JSON's 1e400 parses to Infinity). */
const bounded = (max: number) => z.number().min(0).max(max);
export const CONFIG_LIMITS = {
  /** Rows one step generates: seeds_per_step × group_size. */
  rowsPerStep: 8192,
  tokens: 32768,
} as const;

const engineSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('ort'), threads: positiveInt(1024).optional() }).strict(),
  z
    .object({
      kind: z.literal('torch'),
      /**
       * Refused: a config, and the run directory it is saved in, may come from someone else, and the
       * Python it named would run with the user's rights. The engine's Python comes from the user: the
       * abspLab.pythonPath user setting, `--python`, ABSP_TORCH_PYTHON, or the set-up environment.
       */
      python: z
        .unknown()
        .optional()
        .superRefine((v, ctx) => {
          if (v !== undefined) {
            ctx.addIssue({
              code: 'custom',
              message: 'a config cannot choose the Python the engine runs (a config or run directory may come from someone else); remove it and set the abspLab.pythonPath user setting, pass --python, set ABSP_TORCH_PYTHON, or run `absp torch setup`',
            });
          }
        }),
      device: z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'use "cpu", "cuda" or "cuda:N"').default('cuda'),
      dtype: z.enum(['bfloat16', 'float32', 'float16']).default('bfloat16'),
      /** Processes, one per GPU; above 1 the engine runs data-parallel under the launcher. */
      nproc: positiveInt(1024).default(1),
      launcher: z.literal('torchrun').default('torchrun'),
      /** Shard the weights across the processes (FSDP2's fully_shard) instead of replicating them; nproc ≥ 2. */
      fsdp: z.boolean().default(false),
      gradient_checkpointing: z.boolean().default(false),
      /** Padded tokens per forward/backward pass when training. */
      micro_batch_tokens: positiveInt(16_777_216).default(8192),
      threads: positiveInt(1024).optional(),
    })
    .strict(),
]);

const worldSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('sandbox') }).strict(),
  z
    .object({
      kind: z.literal('seeds'),
      /** JSONL of {"prompt": ..., "harmful": true|false}. */
      file: z.string().min(1).max(4096),
      /** Also mix in the sandbox's own seeds. */
      include_sandbox: z.boolean().default(false),
    })
    .strict(),
]);

/**
 * A judge endpoint: http or https, and never credentials in the URL (`user:pass@host`), which would be
 * written into config.json, run.json, events and logs. Keys come from an environment variable.
 */
const judgeUrl = z
  .string()
  .max(2048)
  .superRefine((v, ctx) => {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a URL, e.g. http://127.0.0.1:8000/v1' });
      return;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: `must be an http or https URL, not ${u.protocol}` });
    if (u.username || u.password) ctx.addIssue({ code: 'custom', message: 'must not carry credentials (user:password@); name the variable that holds the key in judge.api_key_env' });
  });

const judgeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('sandbox') }).strict(),
  /** The project's refusal detector (phrase rules): offline, labels refusals only (docs/trainer.md). */
  z.object({ kind: z.literal('refusal') }).strict(),
  z
    .object({
      kind: z.literal('guard'),
      /** A guard model directory (WildGuard-style output), run by the run's engine (transformers when it is torch). */
      model: z.string().min(1).max(4096),
      format: z.literal('wildguard').default('wildguard'),
      max_new_tokens: positiveInt(1024).default(32),
    })
    .strict(),
  z
    .object({
      kind: z.literal('http'),
      /** Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 */
      url: judgeUrl,
      model: z.string().max(256),
      format: z.literal('wildguard').default('wildguard'),
      api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be the name of an environment variable').optional(),
      timeout_ms: positiveInt(600_000).default(30000),
      retries: int(0, 10).default(2),
      /** Stop the run (paused) when more than this share of a step's items cannot be judged. */
      max_failure_rate: fraction.default(0.5),
    })
    .strict(),
]);

const scheduleSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('simultaneous') }).strict(),
  z
    .object({
      kind: z.literal('alternating'),
      attacker_steps: positiveInt(100_000),
      defender_steps: positiveInt(100_000),
      first: RoleSchema.default('attacker'),
    })
    .strict(),
  z
    .object({
      kind: z.literal('adaptive'),
      /** The attacker trains until this share of its attacks on harmful seeds succeeds in a step… */
      attacker_until: fraction.default(0.3),
      /** …then the defender trains until the share falls to this. */
      defender_until: fraction.default(0.05),
      /** A phase ends after this many steps whatever the attack success. */
      max_steps: positiveInt(1_000_000).default(10),
      first: z.enum(['attacker', 'defender']).default('attacker'),
    })
    .strict(),
]);

const gameSchema = z
  .object({
    seeds_per_step: positiveInt(CONFIG_LIMITS.rowsPerStep).default(16),
    harmful_fraction: fraction.default(0.6),
    /** Share of seeds given to the defender unchanged (Self-RedTeam: half; the sandbox default a quarter). */
    pass_through_fraction: fraction.default(0.25),
    turns: z.number().int().min(1).max(8).default(1),
    hidden_cot: z.object({ attacker: z.boolean().default(false), defender: z.boolean().default(false) }).strict().default({ attacker: false, defender: false }),
    max_new_tokens: z.object({ attacker: positiveInt(CONFIG_LIMITS.tokens).default(40), defender: positiveInt(CONFIG_LIMITS.tokens).default(40) }).strict().default({ attacker: 40, defender: 40 }),
    temperature: bounded(100).default(1),
    top_p: z.number().gt(0).max(1).default(1),
    reward: z.enum(['general-sum', 'zero-sum']).default('general-sum'),
    /** Off reproduces the always-refuse equilibrium: helpfulness on benign prompts earns nothing. */
    reward_benign_helpfulness: z.boolean().default(true),
  })
  .strict();

const rlSchema = z
  .object({
    estimator: z.enum(['reinforce++', 'grpo']).default('grpo'),
    /** Samples per seed (GRPO's group); ignored by REINFORCE++. */
    group_size: positiveInt(256).default(4),
    kl: z
      .object({
        coef: bounded(1e6).default(0.01),
        estimator: z.enum(['k1', 'k3']).default('k3'),
        /** In the per-token reward (REINFORCE++ as Self-RedTeam runs it) or in the loss (GRPO). */
        in_reward: z.boolean().default(false),
      })
      .strict()
      .default({ coef: 0.01, estimator: 'k3', in_reward: false }),
    clip_eps: z.number().positive().max(100).default(0.2),
    gamma: z.number().min(0).max(1).default(1),
    /**
     * Entropy bonus α per role: each sample's surprisal −log π, centred in its GRPO group (or added to
     * REINFORCE++'s per-token reward), keeps a policy exploring when its outcomes tie.
     */
    entropy_bonus: z
      .object({ attacker: bounded(100).default(0), defender: bounded(100).default(0) })
      .strict()
      .default({ attacker: 0, defender: 0 }),
    /**
     * The attacker's novelty term: a well-formed, faithful rewrite earns this weight times its novelty
     * (1 − BLEU-4 against the step's rewrites of other seeds; trainer/diversity.ts), Curiosity-driven
     * red teaming's answer to an attacker that settles on one kind of rewrite once its attacks tie.
     */
    novelty_bonus: bounded(100).default(0),
    /**
     * Fictitious play: the share of attacked seed instances rewritten by a past attacker (the attacker
     * saved at the end of a random earlier round, round 0 included) instead of the trained one. The
     * defender learns from them too, so it does not forget attacks the attacker has moved away from.
     * Off by default: over seeds 1–8 a quarter did no better than none (docs/trainer.md).
     */
    past_attackers: fraction.default(0),
    /**
     * Attack replay: the share of seed instances passed through unchanged that are replaced by a
     * successful attack of an earlier round (trainer/attack-replay.ts), so the defender keeps seeing
     * the weak spots it had after the attacker has moved on. The default, 1, replays one in place of
     * every seed passed through once round 1 has found any (docs/trainer.md, "Keeping the weak spots
     * closed": with the attacker's lower learning rate it closed the weak spots on 7 of 8 seeds).
     */
    replay_attacks: fraction.default(1),
    /** GRPO: groups whose rewards all tie carry no signal and are left out of the update (DAPO). */
    drop_tied_groups: z.boolean().default(false),
    /**
     * Auxiliary supervised loss on benign helpful answers for the defender (Self-RedTeam's recipe for
     * keeping helpfulness): its weight, examples per step, and a JSONL of {"prompt","response"} (the
     * sandbox has its own when no file is given).
     */
    helpful_sft: z
      .object({ coef: bounded(1e6).default(0.5), batch_size: positiveInt(4096).default(16), file: z.string().min(1).max(4096).optional() })
      .strict()
      .default({ coef: 0.5, batch_size: 16 }),
  })
  .strict();

const optimizerSchema = z
  .object({
    kind: z.enum(['adamw', 'sgd']).default('adamw'),
    lr: z
      .object({ attacker: z.number().positive().max(10).default(3.5e-3), defender: z.number().positive().max(10).default(3e-3), shared: z.number().positive().max(10).default(5e-3) })
      .strict()
      .default({ attacker: 3.5e-3, defender: 3e-3, shared: 5e-3 }),
    weight_decay: bounded(100).default(0),
    clip_norm: z.number().positive().max(1e9).nullable().default(1),
    warmup_steps: int(0, 10_000_000).default(0),
  })
  .strict();

const loraSchema = z
  .object({
    rank: positiveInt(1024).default(8),
    alpha: z.number().positive().max(1e6).default(16),
    targets: z.array(z.enum(LORA_TARGETS)).min(1).default(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']),
  })
  .strict();

const evaluationSchema = z
  .object({
    nash_gap: z.boolean().default(true),
    /** Rewrites sampled per seed to measure an attacker's prompt distribution. */
    attacker_samples_per_seed: positiveInt(256).default(4),
    /** Best-response training budget when the Nash gap must be estimated (non-sandbox worlds). */
    best_response_steps: positiveInt(100_000).default(20),
    crossplay: z.boolean().default(true),
  })
  .strict();

export const runConfigSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'use 1-100 letters, digits, ".", "_" and "-", starting with a letter or digit').default('sandbox-absp'),
    seed: int(0, 2 ** 31 - 1).default(1),
    runs_dir: z.string().min(1).max(4096).default('runs'),
    model: z.string().min(1).max(4096).default('builtin:sandbox'),
    engine: engineSchema.default({ kind: 'ort' }),
    world: worldSchema.default({ kind: 'sandbox' }),
    judge: judgeSchema.default({ kind: 'sandbox' }),
    mode: ModeSchema.default('bipolicy'),
    rounds: positiveInt(10_000).default(4),
    steps_per_round: positiveInt(1_000_000).default(15),
    schedule: scheduleSchema.default({ kind: 'simultaneous' }),
    game: gameSchema.default(gameSchema.parse({})),
    rl: rlSchema.default(rlSchema.parse({})),
    optimizer: optimizerSchema.default(optimizerSchema.parse({})),
    lora: loraSchema.default(loraSchema.parse({})),
    evaluation: evaluationSchema.default(evaluationSchema.parse({})),
    /** Modes to run as baselines at the same budget after the main run (the main job compares). */
    baselines: z.array(ModeSchema).max(8).default(['shared-lora']),
    /**
     * Run the experiment and its baselines once per seed, as one sweep (docs/run-directory.md,
     * "Sweeps"); `seed` is then ignored. `absp run --seeds` overrides it.
     */
    seeds: z.array(z.number().int().min(0)).min(1).max(1000).optional(),
  })
  .strict();

export type RunConfig = z.infer<typeof runConfigSchema>;
export type RunConfigInput = z.input<typeof runConfigSchema>;

export class ConfigError extends Error {}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length ? issue.path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  return `${where}: ${issue.message}`;
}

/** Validates a parsed config; `source` names it in errors. */
export function parseRunConfig(value: unknown, source: string): RunConfig {
  const result = runConfigSchema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map(describeIssue);
    throw new ConfigError(`${source}: invalid run config: ${problems.join('; ')}`);
  }
  const c = result.data;
  const rows = c.game.seeds_per_step * (c.rl.estimator === 'grpo' ? c.rl.group_size : 1);
  if (rows > CONFIG_LIMITS.rowsPerStep) {
    throw new ConfigError(`${source}: game.seeds_per_step × rl.group_size is ${rows} rows a step, more than the limit of ${CONFIG_LIMITS.rowsPerStep}`);
  }
  if (c.rl.estimator === 'grpo' && c.rl.group_size < 2) throw new ConfigError(`${source}: rl.group_size must be at least 2 for GRPO (a group needs several samples)`);
  if (c.schedule.kind !== 'simultaneous' && (c.mode === 'attacker-only' || c.mode === 'defender-only')) {
    throw new ConfigError(`${source}: schedule "${c.schedule.kind}" needs both roles to train, but mode is ${c.mode}`);
  }
  if (c.seeds && new Set(c.seeds).size !== c.seeds.length) throw new ConfigError(`${source}: seeds: each seed may appear once (${c.seeds.join(', ')})`);
  if (c.schedule.kind === 'adaptive' && c.schedule.defender_until >= c.schedule.attacker_until) {
    throw new ConfigError(`${source}: schedule.defender_until (${c.schedule.defender_until}) must be below schedule.attacker_until (${c.schedule.attacker_until})`);
  }
  if (c.engine.kind === 'torch' && c.engine.fsdp && c.engine.nproc < 2) throw new ConfigError(`${source}: engine.fsdp shards the weights across processes and needs engine.nproc of 2 or more (one process per GPU); with one process, leave fsdp out`);
  return c;
}

export function loadRunConfig(file: string): RunConfig {
  let text: string;
  try {
    text = readTextFile(file, MAX_CONFIG_BYTES);
  } catch (e) {
    if (e instanceof UnsafeFileError) throw new ConfigError(`${file}: cannot read the config: it ${e.problem}`);
    throw new ConfigError(`${file}: cannot read the config (${(e as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: is not valid JSON (${(e as Error).message})`);
  }
  return parseRunConfig(value, file);
}

/**
 * Makes every path of a config absolute, relative to the folder of the config file, so the resolved
 * config a run saves (config.json) means the same thing from anywhere, including on resume.
 */
export function resolveConfigPaths(c: RunConfig, configDir: string): RunConfig {
  const abs = (p: string) => (path.isAbsolute(p) ? p : path.resolve(configDir, p));
  return {
    ...c,
    runs_dir: abs(c.runs_dir),
    model: c.model.startsWith('builtin:') ? c.model : abs(c.model),
    world: c.world.kind === 'seeds' ? { ...c.world, file: abs(c.world.file) } : c.world,
    judge: c.judge.kind === 'guard' ? { ...c.judge, model: abs(c.judge.model) } : c.judge,
    rl: { ...c.rl, helpful_sft: c.rl.helpful_sft.file ? { ...c.rl.helpful_sft, file: abs(c.rl.helpful_sft.file) } : c.rl.helpful_sft },
  };
}

export function defaultRunConfig(): RunConfig {
  return parseRunConfig({}, 'defaults');
}

/**
 * Parses a seed list as the command line writes it: numbers and ranges separated by commas, e.g.
 * `1-8`, `1,3,5`, `1-3,7`. Throws a ConfigError naming the problem.
 */
export function parseSeedList(text: string): number[] {
  const seeds: number[] = [];
  for (const part of text.split(',').map((p) => p.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new ConfigError(`--seeds: "${part}" is not a seed or a range like 1-8`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw new ConfigError(`--seeds: the range ${part} runs backwards`);
    if (to - from >= 1000) throw new ConfigError(`--seeds: the range ${part} has more than 1000 seeds`);
    for (let s = from; s <= to; s++) seeds.push(s);
  }
  if (new Set(seeds).size !== seeds.length) throw new ConfigError(`--seeds: ${text} names a seed twice`);
  return seeds;
}
