/**
 * `absp sandbox build`: regenerates the pretraining corpus and the tokenizer from one seed, pretrains a
 * small Qwen2-shaped model from scratch with the engine's full-parameter training, measures its profile
 * and writes the model directory. The directory is assembled next to its destination and swapped in at
 * the end, so a failed or interrupted build never leaves a half-written built-in model behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic, fsyncDir } from '../util/atomic';
import { Rng } from '../util/rng';
import { expectedWeights, saveCheckpoint, type Weights } from '../engine/model/checkpoint';
import { parameterCount, parseConfig, type ModelConfig } from '../engine/model/model-config';
import { TextTokenizer } from '../engine/model/tokenizer';
import { Optimizer, type OptimizerConfig } from '../engine/train/optimizer';
import { runSft, type SftStepReport } from '../engine/train/sft';
import type { SftExample } from '../engine/train/sft-data';
import { corpusJsonl, DEFAULT_CORPUS_DIALOGUES, generateCorpus, type CorpusDialogue } from './corpus';
import { fileDigest, MODEL_FILES, type FileDigest } from './builtin';
import { profileModelDir, type SandboxProfile } from './profile';
import { DEFAULT_SANDBOX_SEED } from './targets';
import { MAX_SEQUENCE_TOKENS, SPECIAL_TOKENS, writeTokenizerFiles } from './vocabulary';

/** The transformer's shape; the vocabulary comes from the tokenizer. */
export interface SandboxShape {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  maxPositions: number;
}

/**
 * Small enough that RL self-play on a laptop CPU runs many steps a minute (a 64 + 64 row rollout is a
 * fraction of a second), large enough to memorise the world's per-intent vulnerability table.
 */
export const DEFAULT_SHAPE: SandboxShape = {
  hiddenSize: 128,
  intermediateSize: 384,
  numLayers: 3,
  numHeads: 4,
  numKvHeads: 2,
  maxPositions: 128,
};

export interface TrainingPlan {
  steps: number;
  /** Dialogues per optimiser step. */
  batchSize: number;
  lr: number;
  warmupSteps: number;
  /** The cosine decay ends at this fraction of the peak learning rate. */
  minLrRatio: number;
  weightDecay: number;
  clipNorm: number;
  /** Standard deviation of the normal initialisation of every matrix. */
  initStd: number;
  /**
   * Loss weight of the first token of each assistant turn relative to the others. That token is the
   * opener, which alone carries the profile (refuse or comply) and, for the attacker, the choice of
   * tactic; weighting it makes the optimiser spend its budget there. The weighted loss has the same
   * optimum, the corpus's conditional distribution, so the profile's probabilities are not biased.
   */
  openerWeight: number;
}

/**
 * Chosen by measurement on a 2-core machine (docs/sandbox.md): at equal compute, batches of 32 beat
 * batches of 64, and an opener weight of 4–5 learns the per-intent weak spots markedly better than 1.
 */
export const DEFAULT_PLAN: TrainingPlan = {
  steps: 2000,
  batchSize: 32,
  lr: 3e-3,
  warmupSteps: 100,
  minLrRatio: 0.05,
  weightDecay: 0.01,
  clipNorm: 1,
  initStd: 0.02,
  openerWeight: 4,
};

export interface BuildOptions {
  seed?: number;
  /** Destination model directory (replaced at the end). */
  out: string;
  dialogues?: number;
  shape?: Partial<SandboxShape>;
  plan?: Partial<TrainingPlan>;
  threads?: number;
  /** Measure the built model's profile into build.json (default true; a few seconds to a minute). */
  profile?: boolean;
  /** Rewrites per game seed sampled for the attacker's values in the profile. */
  profileSamplesPerSeed?: number;
  /** Also record the attacker's exact values in the profile (default true; about a minute). */
  exactAttacker?: boolean;
  onStep?: (report: SftStepReport, plan: TrainingPlan) => void;
  /** Called between phases, for a progress display. */
  onPhase?: (phase: 'corpus' | 'training' | 'profile' | 'writing') => void;
}

export interface BuildResult {
  dir: string;
  provenance: BuildProvenance;
}

export interface BuildProvenance {
  seed: number;
  date: string;
  corpus: { dialogues: number; tokens: number; trainedTokens: number; jsonlBytes: number };
  shape: SandboxShape & { vocabSize: number; parameters: number; tiedEmbeddings: true; dtype: 'float32' };
  training: TrainingPlan & { optimizer: 'adamw'; schedule: 'warmup + cosine'; finalLoss: number; skippedSteps: number; threads: number | null };
  wallSeconds: { total: number; training: number; profile: number };
  profile: SandboxProfile | null;
  /** Size and SHA-256 of every other file of the model directory, so corruption is detected. */
  files: Record<string, FileDigest>;
}

/** The Hugging Face config.json of a sandbox model. */
export function sandboxConfigJson(shape: SandboxShape, vocabSize: number): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: vocabSize,
    hidden_size: shape.hiddenSize,
    intermediate_size: shape.intermediateSize,
    num_hidden_layers: shape.numLayers,
    num_attention_heads: shape.numHeads,
    num_key_value_heads: shape.numKvHeads,
    max_position_embeddings: shape.maxPositions,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    attention_dropout: 0,
    initializer_range: DEFAULT_PLAN.initStd,
    use_cache: true,
    use_sliding_window: false,
    sliding_window: null,
    max_window_layers: shape.numLayers,
    torch_dtype: 'float32',
    bos_token_id: null,
    eos_token_id: 2,
    pad_token_id: 0,
  };
}

/**
 * GPT-2 style initialisation: every matrix normal(0, std), the projections that write into the
 * residual stream scaled down by √(2·layers) so the stream's variance does not grow with depth,
 * biases 0 and norm weights 1.
 */
export function initialWeights(config: ModelConfig, seed: number, std = DEFAULT_PLAN.initStd): Weights {
  const rng = new Rng(seed, 29);
  const weights: Weights = new Map();
  const residualStd = std / Math.sqrt(2 * config.numLayers);
  for (const [name, shape] of expectedWeights(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('norm.weight')) data.fill(1);
    else if (!name.endsWith('.bias')) {
      const s = name.includes('o_proj') || name.includes('down_proj') ? residualStd : std;
      for (let i = 0; i < data.length; i++) data[i] = s * rng.normal();
    }
    weights.set(name, { shape, data });
  }
  return weights;
}

/** Each dialogue as token ids, with the loss on the assistant turn (its content and end-of-turn marker). */
export function corpusExamples(dialogues: readonly CorpusDialogue[], tokenizer: TextTokenizer, openerWeight = 1): SftExample[] {
  return dialogues.map((d, line) => {
    const ids = tokenizer.encodeChat(d.messages, false);
    const context = tokenizer.encodeChat(d.messages.slice(0, -1), true).length;
    if (d.messages[d.messages.length - 1]?.role !== 'assistant' || context >= ids.length) throw new Error(`sandbox corpus: dialogue ${line} does not end with an assistant turn`);
    if (ids.length > MAX_SEQUENCE_TOKENS) throw new Error(`sandbox corpus: dialogue ${line} has ${ids.length} tokens, over the ${MAX_SEQUENCE_TOKENS}-token budget`);
    return { ids, lossMask: ids.map((_, i) => (i === context ? openerWeight : i > context ? 1 : 0)), line: line + 1 };
  });
}

function optimizerConfig(plan: TrainingPlan): OptimizerConfig {
  return {
    kind: 'adamw',
    lr: plan.lr,
    betas: [0.9, 0.95],
    eps: 1e-8,
    weightDecay: plan.weightDecay,
    clipNorm: plan.clipNorm,
    schedule: { kind: 'cosine', warmupSteps: plan.warmupSteps, totalSteps: plan.steps, minLrRatio: plan.minLrRatio },
  };
}

const GENERATION_CONFIG = { eos_token_id: [2], pad_token_id: 0, do_sample: true, temperature: 1.0, top_p: 1.0 };

/** Replaces `dest` by `staged` (both in one folder): a reader sees the old model or the new one. */
function swapInto(staged: string, dest: string): void {
  const old = `${dest}.old-${process.pid}-${Date.now()}`;
  const hadOld = fs.existsSync(dest);
  if (hadOld) fs.renameSync(dest, old);
  try {
    fs.renameSync(staged, dest);
  } catch (e) {
    if (hadOld) fs.renameSync(old, dest);
    throw e;
  }
  fsyncDir(path.dirname(dest));
  if (hadOld) fs.rmSync(old, { recursive: true, force: true });
}

export async function buildSandbox(o: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const seed = o.seed ?? DEFAULT_SANDBOX_SEED;
  const shape: SandboxShape = { ...DEFAULT_SHAPE, ...o.shape };
  const plan: TrainingPlan = { ...DEFAULT_PLAN, ...o.plan };
  const dest = path.resolve(o.out);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const staged = fs.mkdtempSync(path.join(path.dirname(dest), `.${path.basename(dest)}.building-`));
  try {
    o.onPhase?.('corpus');
    const dialogues = generateCorpus({ seed, dialogues: o.dialogues ?? DEFAULT_CORPUS_DIALOGUES });
    writeTokenizerFiles(staged);
    writeJsonAtomic(path.join(staged, 'generation_config.json'), GENERATION_CONFIG);
    const tokenizer = TextTokenizer.load(staged);
    if (tokenizer.tokenId(SPECIAL_TOKENS.imEnd) !== 2 || tokenizer.tokenId(SPECIAL_TOKENS.endOfText) !== 0) throw new Error('sandbox tokenizer: unexpected ids for the end-of-turn or pad token');
    const vocabSize = Object.keys((JSON.parse(fs.readFileSync(path.join(staged, 'tokenizer.json'), 'utf8')) as { model: { vocab: object } }).model.vocab).length;
    const configJson = sandboxConfigJson(shape, vocabSize);
    const config = parseConfig(configJson, 'config.json');
    const examples = corpusExamples(dialogues, tokenizer, plan.openerWeight);

    o.onPhase?.('training');
    const trainStarted = Date.now();
    const weights = initialWeights(config, seed, plan.initStd);
    const optimizer = new Optimizer(optimizerConfig(plan));
    const reports = await runSft({
      config,
      weights,
      examples,
      target: { kind: 'full' },
      optimizer,
      steps: plan.steps,
      batchSize: plan.batchSize,
      seed,
      threads: o.threads,
      onStep: (r) => o.onStep?.(r, plan),
    });
    const trainingSeconds = (Date.now() - trainStarted) / 1000;
    const tail = reports.slice(-Math.min(20, reports.length)).filter((r) => !r.skipped);
    const finalLoss = tail.length === 0 ? NaN : tail.reduce((a, r) => a + r.loss, 0) / tail.length;
    // A skipped last step means the current weights give a non-finite loss: the run has blown up.
    if (!Number.isFinite(finalLoss) || reports[reports.length - 1]?.skipped) {
      throw new Error(`sandbox build: training diverged (non-finite loss at step ${reports.length}); try a lower learning rate than ${plan.lr}`);
    }

    o.onPhase?.('writing');
    saveCheckpoint(staged, { ...config, raw: configJson }, weights);

    o.onPhase?.('profile');
    const profileStarted = Date.now();
    const profile =
      o.profile === false ? null : await profileModelDir(staged, { worldSeed: seed, threads: o.threads, samplesPerSeed: o.profileSamplesPerSeed, exactAttacker: o.exactAttacker ?? true });
    const profileSeconds = (Date.now() - profileStarted) / 1000;

    const provenance: BuildProvenance = {
      seed,
      date: new Date().toISOString(),
      corpus: {
        dialogues: dialogues.length,
        tokens: examples.reduce((n, e) => n + e.ids.length, 0),
        trainedTokens: examples.reduce((n, e) => n + e.lossMask.filter((m) => m > 0).length, 0),
        jsonlBytes: Buffer.byteLength(corpusJsonl(dialogues)),
      },
      shape: { ...shape, vocabSize, parameters: parameterCount(config), tiedEmbeddings: true, dtype: 'float32' },
      training: {
        ...plan,
        optimizer: 'adamw',
        schedule: 'warmup + cosine',
        finalLoss,
        skippedSteps: reports.filter((r) => r.skipped).length,
        threads: o.threads ?? null,
      },
      wallSeconds: { total: (Date.now() - started) / 1000, training: trainingSeconds, profile: profileSeconds },
      profile,
      files: Object.fromEntries(MODEL_FILES.map((f) => [f, fileDigest(path.join(staged, f))])),
    };
    writeJsonAtomic(path.join(staged, 'build.json'), provenance);
    // mkdtemp made the staging folder private; the model folder is an ordinary, readable one.
    fs.chmodSync(staged, 0o755);
    swapInto(staged, dest);
    return { dir: dest, provenance };
  } catch (e) {
    fs.rmSync(staged, { recursive: true, force: true });
    throw e;
  }
}
