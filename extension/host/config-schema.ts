/**
 * The JSON schema VS Code uses for `*.absp.json` run configs (contributed as jsonValidation): it gives
 * hovers, completion and validation in the editor, which is where the starter config's explanations
 * live since `absp run` reads strict JSON without comments. It is generated from the trainer's own zod
 * schema, so it cannot drift from what `absp run` accepts; test/host/config-schema.test.ts fails when
 * the shipped media/absp-config.schema.json is stale and rewrites it with ABSP_UPDATE_SCHEMA=1.
 * Not imported by the extension at run time.
 */
import { z } from 'zod';
import { runConfigSchema } from '../trainer/run-config';

/** What each field means, by its path in the config (docs/config.md has the long form). */
export const FIELD_DOCS: Record<string, string> = {
  '': 'An ABSP Lab run config: one self-play red-teaming experiment. Every field has a default; {} is the built-in sandbox experiment. Run it with "ABSP: Start Run" or `absp run FILE`.',
  name: 'Name of the run; the run directory is <time>-<name>. Letters, digits, ".", "_" and "-".',
  seed: 'Random seed of the whole experiment (seeds drawn, sampling, adapter initialisation).',
  runs_dir: 'Folder for run directories, relative to this file. Runs started from VS Code go to the "abspLab.runsFolder" setting instead, so the Runs view shows them.',
  model: 'The frozen base model: a Hugging Face Qwen2 or Llama model directory, or "builtin:sandbox" for the small model shipped with the extension.',
  engine: 'What runs the model: "ort" (ONNX Runtime on the CPU, built in) or "torch" (PyTorch + transformers + PEFT in a Python process, on GPUs or the CPU).',
  'engine.threads': 'CPU threads the engine may use (default: all cores).',
  'engine.python': 'Not accepted: a config cannot choose the executable the engine runs (it may come from someone else). The torch engine runs the abspLab.pythonPath user setting\'s Python or the environment "ABSP: Set Up PyTorch Engine…" (absp torch setup) created.',
  'engine.device': 'PyTorch device: "cuda", "cuda:1" or "cpu".',
  'engine.dtype': 'Weights and activations type (bfloat16 on GPUs, float32 on the CPU).',
  'engine.nproc': 'Processes, one per GPU; above 1 the engine runs data-parallel under torchrun (DistributedDataParallel, or FSDP with "fsdp": true).',
  'engine.launcher': 'What starts several processes: torchrun.',
  'engine.fsdp': 'Shard the frozen base (and a shared-full model) across the nproc processes with FSDP (fully_shard) instead of holding it whole on each; needs nproc of 2 or more. Rollouts gather the whole weights for their duration.',
  'engine.gradient_checkpointing': 'Recompute activations in the backward pass to save GPU memory.',
  'engine.micro_batch_tokens': 'Padded tokens per forward/backward pass when training; lower it if the GPU runs out of memory.',
  world: 'Where seed requests come from: the sandbox world, or a seeds JSONL of {"prompt": …, "harmful": true|false} lines (e.g. exported annotated failures).',
  'world.file': 'The seeds JSONL file, relative to this config.',
  'world.include_sandbox': 'Also draw the sandbox\'s own seeds.',
  judge: 'Who labels each exchange (prompt harmful? refusal? response harmful?): the sandbox\'s exact judge, a WildGuard-style guard model run locally, or an OpenAI-compatible HTTP server.',
  'judge.model': 'The guard model directory (guard) or the served model name (http).',
  'judge.url': 'Base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.',
  'judge.api_key_env': 'Name of the environment variable holding the API key.',
  'judge.max_failure_rate': 'Pause the run when more than this share of a step\'s exchanges cannot be judged.',
  mode: 'bipolicy: ABSP, two LoRA adapters (attacker, defender) on the frozen base. shared-lora: one adapter plays both roles (self-play baseline). shared-full: full fine-tuning of one shared model. attacker-only / defender-only: train one role against the frozen other.',
  rounds: 'Rounds of training; the adapters are saved, and the Nash gap measured, after each.',
  steps_per_round: 'RL steps per round.',
  schedule: 'simultaneous: both roles update every step. alternating: attacker_steps attacker updates, then defender_steps defender updates. adaptive: the attacker trains until its attacks succeed (attacker_until), then the defender until they fail (defender_until), each phase at most max_steps (MAGIC\'s schedule).',
  game: 'The red-teaming game played each step.',
  'game.seeds_per_step': 'Seed requests drawn per step (the rollout batch).',
  'game.harmful_fraction': 'Share of harmful seeds (the rest are benign, to reward helpfulness and catch over-refusal).',
  'game.pass_through_fraction': 'Share of seeds given to the defender unchanged, without an attack (Self-RedTeam uses one half).',
  'game.turns': 'Attacker–defender turns per exchange.',
  'game.hidden_cot': 'Whether each role thinks inside <think>…</think> first; thoughts are never shown to the opponent or the judge.',
  'game.max_new_tokens': 'Generation length limit of each role.',
  'game.temperature': 'Sampling temperature of both roles.',
  'game.top_p': 'Nucleus sampling threshold of both roles.',
  'game.reward': 'general-sum (Self-RedTeam\'s rewards) or zero-sum (the defender gets minus the attacker\'s reward).',
  'game.reward_benign_helpfulness': 'Reward the defender for answering benign requests. Off reproduces the always-refuse equilibrium.',
  rl: 'The policy-gradient estimator.',
  'rl.estimator': 'reinforce++ (no critic, per-role normalised advantages) or grpo (group baseline; needs group_size ≥ 2).',
  'rl.group_size': 'Samples per seed (GRPO\'s group).',
  'rl.kl': 'KL penalty to the frozen base (the anchor).',
  'rl.kl.coef': 'KL coefficient (Self-RedTeam: 0.01).',
  'rl.clip_eps': 'PPO-style ratio clipping.',
  'rl.entropy_bonus': 'Entropy bonus per role: each sample\'s surprisal, centred in its group, keeps a role exploring when its outcomes tie.',
  'rl.past_attackers': 'Fictitious play: share of attacks written by a past attacker (saved at the end of an earlier round, round 0 included); they train the defender only.',
  'rl.drop_tied_groups': 'GRPO: leave groups whose rewards all tie out of the update (DAPO\'s dynamic sampling); they carry no signal.',
  optimizer: 'Optimiser of the adapters.',
  'optimizer.lr': 'Learning rate per policy.',
  'optimizer.clip_norm': 'Gradient norm clipping (null: off).',
  lora: 'The LoRA adapters: rank, alpha (scale = alpha / rank) and the modules they adapt.',
  'lora.rank': 'LoRA rank r.',
  'lora.alpha': 'LoRA alpha; the update is scaled by alpha / rank.',
  'lora.targets': 'Linear modules that get an adapter.',
  evaluation: 'What is measured after each round.',
  'evaluation.nash_gap': 'Measure the Nash gap (exact in the sandbox, estimated by best-response training elsewhere).',
  'evaluation.crossplay': 'After the run, play every saved attacker against every saved defender (crossplay.json).',
  baselines: 'Modes to run after the main run at the same budget, to compare with (e.g. ["shared-lora"]).',
  seeds: 'Run the experiment and its baselines once per seed, as one sweep with medians and intervals over seeds (e.g. [1, 2, 3]); "seed" is then ignored.',
};

type JsonSchema = { [key: string]: unknown; properties?: Record<string, JsonSchema>; oneOf?: JsonSchema[]; anyOf?: JsonSchema[] };

function annotate(node: JsonSchema, at: string): void {
  const doc = FIELD_DOCS[at];
  if (doc && typeof node.description !== 'string') node.description = doc;
  for (const [key, child] of Object.entries(node.properties ?? {})) annotate(child, at ? `${at}.${key}` : key);
  for (const alt of [...(node.oneOf ?? []), ...(node.anyOf ?? [])]) annotate(alt, at);
}

export function runConfigJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(runConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  annotate(schema, '');
  schema.title = 'ABSP Lab run config';
  return schema;
}

export function runConfigJsonSchemaText(): string {
  return `${JSON.stringify(runConfigJsonSchema(), null, 2)}\n`;
}
