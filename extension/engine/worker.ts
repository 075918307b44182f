/**
 * The engine worker: the work of the panels that needs the model or heavy arithmetic, on a
 * worker_threads thread so the extension host stays responsive. Two jobs:
 *
 *  - replay: play a recorded exchange's attack against the defender of another round, with the ONNX
 *    Runtime engine (the run's own base model, role prompts, sampling settings and judge);
 *  - adapter-diff: compare two LoRA adapters module by module (extension/analysis/adapter-diff.ts).
 *
 * Jobs run one at a time, report progress, and stop early when cancelled: the host writes the id of
 * the job to cancel into a shared Int32Array, which long loops check (a message could not arrive while
 * the thread is busy). Every failure is answered as an error message; nothing is thrown past a job.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { diffAdapters, loadLoraAdapter, type AdapterDiff, type LoraAdapter } from '../analysis/adapter-diff';
import { readConfig, type Qwen2Config } from './model/config';
import { loadAdapter } from './lora/adapter';
import { resolveModelDir } from './model/model-dir';
import { RunReader, roundDirName, type Exchange } from '../rundir';
import { parseRunConfig, type RunConfig } from '../trainer/config';
import { makeJudge } from '../trainer/judges';
import { OrtEngine } from '../trainer/ort-engine';
import { rolePrompts } from '../trainer/role-prompts';
import { splitOutput } from '../trainer/thoughts';

// ---------------------------------------------------------------------------------------------------
// Messages (the host's engine-client.ts speaks the other end)

export interface AdapterDiffJob {
  type: 'adapter-diff';
  id: number;
  left: string;
  right: string;
  /** The run's base model (config.json "model"); adapters are checked against it when it is here. */
  baseModel: string | null;
}

export interface ReplayJob {
  type: 'replay';
  id: number;
  runDir: string;
  round: number;
  exchange: string;
  adapterRound: number;
}

export type WorkerRequest = AdapterDiffJob | ReplayJob | { type: 'shutdown' };

export interface ReplayOutput {
  exchange: string;
  adapterRound: number;
  adapters: Record<string, string | null>;
  defender: { thought: string | null; text: string; raw: string };
  judge: { prompt_harmful: boolean | null; refusal: boolean | null; response_harmful: boolean | null; unparsable: boolean } | null;
  /** Why there are no judge labels, when there are none. */
  judgeError?: string;
  elapsed_ms: number;
}

export type WorkerReply =
  | { type: 'progress'; id: number; done: number; total: number }
  | { type: 'result'; id: number; result: AdapterDiff | ReplayOutput }
  | { type: 'error'; id: number; message: string; cancelled?: boolean };

export interface WorkerData {
  /** Int32Array view: [0] holds the id of a job to abandon. */
  cancel: SharedArrayBuffer;
}

// ---------------------------------------------------------------------------------------------------

export class Cancelled extends Error {
  constructor() {
    super('cancelled');
  }
}

/** A problem with the user's data (not a bug): its message is the whole story. */
export class JobError extends Error {}

type Progress = (done: number, total: number) => void;

export function adapterDiffJob(job: AdapterDiffJob, progress: Progress, checkCancelled: () => void): AdapterDiff {
  const load = (dir: string): LoraAdapter => {
    if (!fs.existsSync(dir)) throw new JobError(`${dir} does not exist: the round has no such adapter`);
    return loadLoraAdapter(dir);
  };
  const left = load(job.left);
  const right = load(job.right);
  // The comparison needs only the two adapters; one that does not fit the run's base model is still
  // compared, with a warning, since that is exactly what the user may be trying to find out.
  const base = baseConfigIfPresent(job.baseModel);
  const warnings = base ? [job.left, job.right].map((dir) => fitsBase(dir, base.config, base.dir)).filter((w): w is string => w !== null) : [];
  for (const [key, l] of left.modules) {
    const r = right.modules.get(key);
    if (r && (r.inFeatures !== l.inFeatures || r.outFeatures !== l.outFeatures)) {
      throw new JobError(
        `the two adapters do not belong to the same base model: ${key} is ${l.outFeatures}×${l.inFeatures} in ${job.left} but ${r.outFeatures}×${r.inFeatures} in ${job.right}`,
      );
    }
  }
  const diff = diffAdapters(left, right, (done, total) => {
    checkCancelled();
    progress(done, total);
  });
  return { ...diff, warnings: [...warnings, ...diff.warnings] };
}

function baseConfigIfPresent(model: string | null): { dir: string; config: Qwen2Config } | null {
  if (!model) return null;
  const dir = resolveModelDir(model);
  if (!fs.existsSync(path.join(dir, 'config.json'))) return null;
  try {
    return { dir, config: readConfig(dir) };
  } catch {
    return null;
  }
}

/** The engine's own loader checks every module's shape against the model; its message names the tensor. */
function fitsBase(adapterDir: string, config: Qwen2Config, modelDir: string): string | null {
  try {
    loadAdapter(adapterDir, config);
    return null;
  } catch (e) {
    return `${adapterDir} does not fit the run's base model ${modelDir}: ${(e as Error).message}`;
  }
}

// ---------------------------------------------------------------------------------------------------
// Replay

interface OpenEngine {
  model: string;
  threads: number | undefined;
  engine: OrtEngine;
  /** Loaded defender policies by folder, most recent last. */
  policies: string[];
}

let opened: OpenEngine | null = null;
const MAX_POLICIES = 4;

async function engineFor(model: string, threads: number | undefined): Promise<OrtEngine> {
  if (opened && opened.model === model && opened.threads === threads) return opened.engine;
  if (opened) await opened.engine.close();
  opened = null;
  const dir = resolveModelDir(model);
  if (!fs.existsSync(dir)) {
    throw new JobError(
      model === 'builtin:sandbox'
        ? `the built-in sandbox model is not installed (${dir} is missing); rebuild it with \`npx absp sandbox build\``
        : `the run's base model ${model} is not on this machine (${dir} does not exist); replay needs it locally`,
    );
  }
  opened = { model, threads, engine: OrtEngine.open(model, { threads }), policies: [] };
  return opened.engine;
}

/** Which folder of a round holds the defender: its own adapter, the shared one, full weights, or none (the base). */
export function defenderFolder(runDir: string, round: number): { dir: string; kind: 'lora' | 'full'; rel: string } | null {
  for (const [slot, kind] of [['defender', 'lora'], ['shared', 'lora'], ['model', 'full']] as const) {
    const rel = `rounds/${roundDirName(round)}/${slot}`;
    const dir = path.join(runDir, rel);
    if (fs.existsSync(dir)) return { dir, kind, rel };
  }
  return null;
}

function stableSeed(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

export async function replayJob(job: ReplayJob, progress: Progress, checkCancelled: () => void): Promise<ReplayOutput> {
  const started = Date.now();
  const reader = RunReader.open(job.runDir);
  const rawConfig = reader.config();
  if (!rawConfig) throw new JobError(`${path.join(job.runDir, 'config.json')} is missing or unreadable: the replay needs the run's config`);
  let config: RunConfig;
  try {
    config = parseRunConfig(rawConfig, path.join(job.runDir, 'config.json'));
  } catch (e) {
    throw new JobError(`the run's config cannot be replayed by this version of ABSP Lab: ${(e as Error).message}`);
  }
  const exchange: Exchange | undefined = reader.transcript(job.round).find((x) => x.id === job.exchange);
  if (!exchange) throw new JobError(`exchange ${job.exchange} is not among the valid exchanges of round ${job.round}`);
  if (!reader.rounds().some((r) => r.round === job.adapterRound)) throw new JobError(`round ${job.adapterRound} of this run is not complete: it has no saved adapters yet`);
  const folder = defenderFolder(job.runDir, job.adapterRound);
  const total = exchange.turns.length + 2;
  progress(0, total);

  const engine = await engineFor(config.model, config.engine.kind === 'ort' ? config.engine.threads : undefined);
  checkCancelled();
  let policy: string | null = null;
  if (folder) {
    policy = `defender:${folder.dir}`;
    if (!opened!.policies.includes(policy)) {
      try {
        await engine.loadPolicy(policy, folder.dir, folder.kind);
      } catch (e) {
        throw new JobError(`${folder.rel} does not fit the run's base model ${config.model}: ${(e as Error).message}`);
      }
      opened!.policies.push(policy);
      while (opened!.policies.length > MAX_POLICIES) await engine.dropPolicy(opened!.policies.shift()!);
    }
  }
  progress(1, total);

  const prompts = rolePrompts(config.world.kind === 'sandbox' ? 'sandbox' : 'general', config.game.hidden_cot);
  const attackerTexts = exchange.turns.map((t) => t.attacker?.text ?? exchange.seed.prompt);
  const answers: string[] = [];
  let last = { thought: null as string | null, text: '', raw: '', wellFormed: false };
  // The recorded attack, turn by turn; later turns see the replayed defender's own earlier answers.
  for (let t = 0; t < exchange.turns.length; t++) {
    checkCancelled();
    const ids = engine.encode(engine.chat(prompts.defender(attackerTexts.slice(0, t + 1), answers), true));
    const [gen] = await engine.generate([{ prompt: ids, policy, seed: stableSeed(`${exchange.id}:${t}`) }], {
      maxNewTokens: config.game.max_new_tokens.defender,
      temperature: config.game.temperature,
      topP: config.game.top_p,
      stopTokens: engine.stopTokens(),
    });
    const raw = engine.decode(gen.tokens.slice(0, config.game.max_new_tokens.defender));
    const split = splitOutput(raw, config.game.hidden_cot.defender);
    last = { thought: split.thought, text: split.answer, raw, wellFormed: split.wellFormed && gen.finish === 'stop' };
    answers.push(raw);
    progress(t + 2, total);
  }
  checkCancelled();

  let judge: ReplayOutput['judge'] = null;
  let judgeError: string | undefined;
  try {
    const j = makeJudge(config);
    try {
      const lastTurn = exchange.turns[exchange.turns.length - 1];
      const [v] = await j.judge([
        {
          seed: { id: exchange.seed.intent ?? exchange.id, prompt: exchange.seed.prompt, harmful: exchange.seed.harmful, intent: exchange.seed.intent, source: exchange.seed.source ?? 'replay' },
          attackerRaw: lastTurn.attacker ? lastTurn.attacker.raw : null,
          prompt: lastTurn.attacker ? lastTurn.attacker.text : exchange.seed.prompt,
          defenderRaw: last.raw,
          response: last.text,
          attackerWellFormed: exchange.attacked ? exchange.judge.well_formed?.attacker ?? null : null,
          defenderWellFormed: last.wellFormed,
        },
      ]);
      judge = { prompt_harmful: v.promptHarmful, refusal: v.refusal, response_harmful: v.responseHarmful, unparsable: v.unparsable };
    } finally {
      await j.close();
    }
  } catch (e) {
    judgeError = `the run's judge (${config.judge.kind}) could not label the replay: ${(e as Error).message}`;
  }
  progress(total, total);
  return {
    exchange: exchange.id,
    adapterRound: job.adapterRound,
    adapters: { attacker: exchange.adapters.attacker ?? null, defender: folder ? folder.rel : 'base' },
    defender: { thought: last.thought, text: last.text, raw: last.raw },
    judge,
    ...(judgeError ? { judgeError } : {}),
    elapsed_ms: Date.now() - started,
  };
}

// ---------------------------------------------------------------------------------------------------
// The thread's message loop

function serve(): void {
  const port = parentPort!;
  const cancel = new Int32Array((workerData as WorkerData).cancel);
  let queue: Promise<void> = Promise.resolve();
  const reply = (m: WorkerReply) => port.postMessage(m);
  port.on('message', (msg: WorkerRequest) => {
    if (msg.type === 'shutdown') {
      queue = queue.then(async () => {
        if (opened) await opened.engine.close().catch(() => {});
        opened = null;
        port.close();
      });
      return;
    }
    queue = queue.then(() => run(msg));
  });

  async function run(job: AdapterDiffJob | ReplayJob): Promise<void> {
    const checkCancelled = () => {
      if (Atomics.load(cancel, 0) === job.id) throw new Cancelled();
    };
    const progress: Progress = (done, total) => reply({ type: 'progress', id: job.id, done, total });
    try {
      checkCancelled();
      const result = job.type === 'adapter-diff' ? adapterDiffJob(job, progress, checkCancelled) : await replayJob(job, progress, checkCancelled);
      reply({ type: 'result', id: job.id, result });
    } catch (e) {
      if (e instanceof Cancelled) reply({ type: 'error', id: job.id, message: 'cancelled', cancelled: true });
      else reply({ type: 'error', id: job.id, message: (e as Error).message || String(e) });
    }
  }
}

if (parentPort && (workerData as WorkerData | undefined)?.cancel) serve();
