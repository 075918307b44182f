/**
 * The policy engine: the narrow interface between what plays and trains policies (the trainer, the
 * sandbox's exact game values, the panel worker's replay) and a model engine. Callers name policies
 * (`attacker`, `defender`, `shared`, …); the engine owns their weights and optimiser state. The
 * built-in engine runs on ONNX Runtime in this process (ort-engine.ts); the PyTorch engine (torch/) speaks the same
 * interface from a child process. Every call is batched, and rows of one call may use different
 * policies, so both roles share passes over the frozen base.
 */

/** `null` is the frozen base model: the anchor for the KL penalty. */
export type PolicyName = string | null;

export interface PolicySpec {
  /** `lora`: an adapter on the frozen base. `full`: a full copy of the weights (shared-full mode). */
  kind: 'lora' | 'full';
  rank?: number;
  alpha?: number;
  targets?: string[];
  seed?: number;
  /** A PEFT adapter (lora) or model directory (full) to start from. */
  init?: string;
}

export interface GenerationRequest {
  prompt: readonly number[];
  policy: PolicyName;
  seed: number;
}

export interface GenerationSettings {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  stopTokens: readonly number[];
}

export interface GeneratedText {
  tokens: number[];
  logprobs: number[];
  finish: 'stop' | 'length';
  /** The fingerprint of the policy weights that sampled this row (null: the frozen base). */
  fingerprint?: string | null;
}

export interface ScoreRequest {
  ids: readonly number[];
  policy: PolicyName;
}

export interface TrainSample {
  ids: readonly number[];
  policy: string;
  /** Per token of `ids` (entry 0 unused): weight (mask / normaliser), advantage, behaviour and reference log-probs. */
  weights: readonly number[];
  advantages: readonly number[];
  oldLogprobs: readonly number[];
  refLogprobs: readonly number[];
}

export interface OptimizerSettings {
  lr: number;
  kind: 'adamw' | 'sgd';
  weightDecay: number;
  clipNorm: number | null;
  warmupSteps: number;
  /** Decay after warmup (default constant), fixed when the optimiser is created. */
  schedule?: { kind: 'constant' | 'linear' | 'cosine'; totalSteps: number; minLrRatio: number };
}

export interface TrainSettings {
  /** `pg` (default): the policy-gradient loss below. `nll`: Σ w·(−log p), supervised fine-tuning. */
  loss?: 'pg' | 'nll';
  clipEps: number;
  klK1: number;
  klK3: number;
  /** Per policy trained in this step. */
  optimizers: Record<string, OptimizerSettings>;
}

export interface TrainReport {
  /** Per policy: its loss, gradient norm, and whether the step was skipped (non-finite). */
  policies: Record<string, { loss: number; gradNorm: number; skipped: boolean; lr: number; fingerprint?: string }>;
  tokens: number;
}

export interface PolicyEngineInfo {
  name: 'ort' | 'torch';
  model: string;
  vocabSize: number;
  maxPositions: number;
  baseParameters: number;
  /** Where the model runs (torch: "cpu", "cuda:0", …; ort: "cpu") and in which precision. */
  device?: string;
  dtype?: string;
  /** Processes running the engine (torchrun); 1 otherwise. */
  worldSize?: number;
  /** Whether those processes shard the weights (FSDP) rather than each holding them whole. */
  fsdp?: boolean;
}

export interface PolicyEngine {
  readonly info: PolicyEngineInfo;
  /** Resolves once the model is loaded (at once for the built-in engine), with the final info. */
  ready(): Promise<PolicyEngineInfo>;
  /** Plain text: special tokens in it are ordinary characters (all a policy, seed or dataset writes). */
  encode(text: string): number[];
  /** Text of the caller's own in which special tokens are meant (a marker constant); never untrusted text. */
  encodeMarkup(text: string): number[];
  /** A conversation through the model's chat template: the template's markers special, every message plain text. */
  encodeChat(messages: readonly { role: string; content: string }[], addGenerationPrompt: boolean): number[];
  decode(ids: readonly number[]): string;
  stopTokens(): number[];

  createPolicy(name: string, spec: PolicySpec): Promise<void>;
  /** Loads saved weights (adapter or full model directory) into a policy, creating it if needed. */
  loadPolicy(name: string, dir: string, kind: 'lora' | 'full'): Promise<void>;
  /** Writes the policy (a PEFT adapter, or a model directory) and returns its fingerprint. */
  savePolicy(name: string, dir: string): Promise<string>;
  dropPolicy(name: string): Promise<void>;
  policyParameters(name: string): number;
  /** A hash of the policy's current weights, the same in both engines (engine/fingerprint.ts). */
  fingerprint(name: string): Promise<string>;

  generate(requests: readonly GenerationRequest[], settings: GenerationSettings): Promise<GeneratedText[]>;
  /** result[r][i] = log p(ids[i] | ids[<i]) under the row's policy; result[r][0] = null. */
  logprobs(rows: readonly ScoreRequest[]): Promise<(number | null)[][]>;
  /** log p(candidate | ids) for each candidate token after each row (the exact next-token distribution). */
  nextTokenLogprobs(rows: readonly ScoreRequest[], candidates: readonly number[]): Promise<number[][]>;
  /** One policy-gradient step for every policy named by the samples. */
  trainStep(samples: readonly TrainSample[], settings: TrainSettings): Promise<TrainReport>;
  saveOptimizer(name: string, dir: string): Promise<void>;
  loadOptimizer(name: string, dir: string): Promise<void>;

  close(): Promise<void>;
}

export class EngineError extends Error {}
