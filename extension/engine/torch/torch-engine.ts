/**
 * The PyTorch engine, seen from the trainer: the `Engine` interface implemented by a Python child
 * process (extension/torch-engine) that holds one frozen Hugging Face base model and the policies
 * as named PEFT adapters. Token ids cross the wire; the tokenizer and chat template stay here, the
 * same code as the built-in engine's, so both engines see the same ids for the same text.
 *
 * `open` is synchronous like the built-in engine's: it reads the model's config.json here, starts
 * the process, and every call waits for the process to have loaded the model. With `nproc` > 1 the
 * process is started by torchrun, one rank per device; rank 0 speaks the protocol.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveModelDir } from '../model/model-dir';
import { TextTokenizer } from '../model/tokenizer';
import type {
  PolicyEngine,
  PolicyEngineInfo,
  GeneratedText,
  GenerationRequest,
  GenerationSettings,
  PolicySpec,
  ScoreRequest,
  TrainReport,
  TrainSample,
  TrainSettings,
} from '../policy-engine';
import { EngineProcess, PROTOCOL_VERSION, TorchEngineError } from './client';
import { engineCwd, engineEnv, findEnginePython, missingEnvironmentMessage } from './python-env';
import { readTextFile, UnsafeFileError } from '../../util/safe-fs';

export interface TorchEngineOptions {
  /**
   * A Python with the engine's requirements, from the user (a setting, --python); default: the set-up
   * environment (python-env.ts). Never from a run config.
   */
  python?: string | null;
  device?: string;
  dtype?: 'float32' | 'bfloat16' | 'float16';
  threads?: number;
  /** Processes (one per GPU); above 1 the engine runs under the launcher. */
  nproc?: number;
  launcher?: 'torchrun';
  /** Shard the weights across the processes with FSDP2 (fully_shard); needs nproc ≥ 2. */
  fsdp?: boolean;
  gradientCheckpointing?: boolean;
  /** Padded tokens per forward/backward pass when training. */
  microBatchTokens?: number;
  /** transformers' attention implementation (default: its own choice, sdpa). */
  attn?: string;
  env?: NodeJS.ProcessEnv;
}

interface ModelConfigJson {
  vocab_size?: number;
  max_position_embeddings?: number;
  eos_token_id?: number | number[] | null;
}

/** A model's config.json is a small document; read without following a link or blocking on a FIFO. */
const MAX_MODEL_CONFIG_BYTES = 16 * 1024 * 1024;

function readModelConfig(dir: string): ModelConfigJson {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(dir)) throw new TorchEngineError(`${dir}: model directory does not exist`, 'checkpoint');
  let text: string;
  try {
    text = readTextFile(file, MAX_MODEL_CONFIG_BYTES);
  } catch (e) {
    if (e instanceof UnsafeFileError) throw new TorchEngineError(`${file}: cannot be read: it ${e.problem}`, 'checkpoint');
    throw new TorchEngineError(`${file}: is missing; a Hugging Face model directory needs a config.json`, 'checkpoint');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new TorchEngineError(`${file}: is not valid JSON (${(e as Error).message})`, 'checkpoint');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TorchEngineError(`${file}: is not a JSON object`, 'checkpoint');
  return raw as ModelConfigJson;
}

export class TorchEngine implements PolicyEngine {
  info: PolicyEngineInfo;
  private readonly loaded: Promise<void>;
  private tokenizerCache: TextTokenizer | null = null;
  private readonly parameters = new Map<string, number>();
  private readonly eos: number[];

  private constructor(
    private readonly proc: EngineProcess,
    private readonly modelDir: string,
    config: ModelConfigJson,
    options: TorchEngineOptions,
    readonly python: string,
  ) {
    const eos = config.eos_token_id;
    this.eos = Array.isArray(eos) ? eos.filter((x) => Number.isInteger(x)) : Number.isInteger(eos) ? [eos as number] : [];
    this.info = {
      name: 'torch',
      model: modelDir,
      vocabSize: config.vocab_size ?? 0,
      maxPositions: config.max_position_embeddings ?? 0,
      baseParameters: 0,
      device: options.device ?? 'cpu',
      dtype: options.dtype ?? 'float32',
    };
    this.loaded = this.start(options);
    this.loaded.catch(() => undefined); // reported by the first call that waits for it
  }

  static open(modelSpec: string, options: TorchEngineOptions = {}): TorchEngine {
    const dir = resolveModelDir(modelSpec);
    const config = readModelConfig(dir);
    const python = findEnginePython(options.python);
    if (!python) throw new TorchEngineError(`the torch engine cannot start: ${missingEnvironmentMessage(options.python)}`, 'environment');
    const nproc = options.nproc ?? 1;
    if (options.fsdp && nproc < 2) throw new TorchEngineError(`fsdp shards the weights across processes and needs nproc of 2 or more (one process per GPU), got ${nproc}`, 'request');
    const device = options.device ?? 'cpu';
    let command = python;
    let args = ['-m', 'absp_torch', 'serve', '--device', device];
    if (nproc > 1) {
      args = ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', String(nproc), '-m', 'absp_torch', 'serve', '--device', device];
      command = python;
    }
    const env = engineEnv({ ...process.env, ...options.env });
    if (options.threads) env.OMP_NUM_THREADS = String(options.threads);
    const proc = new EngineProcess({ command, args, env, cwd: engineCwd(), label: nproc > 1 ? `${python} -m torch.distributed.run, ${nproc} processes` : `${python} -m absp_torch serve` });
    return new TorchEngine(proc, dir, config, options, python);
  }

  private async start(o: TorchEngineOptions): Promise<void> {
    const hello = await this.proc.request('hello');
    if (hello.protocol !== PROTOCOL_VERSION) {
      throw new TorchEngineError(`the torch engine at ${this.python} speaks protocol ${String(hello.protocol)}, this extension ${PROTOCOL_VERSION}: run \`absp torch setup\` again`, 'environment');
    }
    const opened = await this.proc.request('open', {
      model: this.modelDir,
      device: o.device ?? 'cpu',
      dtype: o.dtype ?? 'float32',
      threads: o.threads,
      attn: o.attn,
      microBatchTokens: o.microBatchTokens,
      gradientCheckpointing: o.gradientCheckpointing ?? false,
      fsdp: o.fsdp ?? false,
    });
    const info = opened.info as Record<string, unknown>;
    this.info = {
      ...this.info,
      vocabSize: Number(info.vocabSize),
      maxPositions: Number(info.maxPositions),
      baseParameters: Number(info.baseParameters),
      device: String(info.device),
      dtype: String(info.dtype),
      worldSize: Number(info.worldSize ?? 1),
      fsdp: info.fsdp === true,
    };
  }

  /** Resolves once the engine has loaded the model (rejects with why it could not). */
  async ready(): Promise<PolicyEngineInfo> {
    await this.loaded;
    return this.info;
  }

  /** The engine process (for tests and the log): its pid. */
  get pid(): number | undefined {
    return this.proc.pid;
  }

  private async call(op: string, fields: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    await this.loaded;
    return this.proc.request(op, fields);
  }

  private get tokenizer(): TextTokenizer {
    this.tokenizerCache ??= TextTokenizer.load(this.modelDir);
    return this.tokenizerCache;
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }
  encodeMarkup(text: string): number[] {
    return this.tokenizer.encodeMarkup(text);
  }
  encodeChat(messages: readonly { role: string; content: string }[], addGenerationPrompt: boolean): number[] {
    return this.tokenizer.encodeChat(messages, addGenerationPrompt);
  }
  decode(ids: readonly number[]): string {
    return this.tokenizer.decode(ids, true);
  }
  stopTokens(): number[] {
    return this.tokenizer.stopTokenIds(this.eos);
  }

  async createPolicy(name: string, spec: PolicySpec): Promise<void> {
    const r = await this.call('create_policy', { name, spec });
    this.parameters.set(name, Number(r.parameters));
  }

  async loadPolicy(name: string, dir: string, kind: 'lora' | 'full'): Promise<void> {
    const r = await this.call('load_policy', { name, dir: path.resolve(dir), kind });
    this.parameters.set(name, Number(r.parameters));
  }

  async savePolicy(name: string, dir: string): Promise<string> {
    const r = await this.call('save_policy', { name, dir: path.resolve(dir) });
    return String(r.fingerprint);
  }

  async dropPolicy(name: string): Promise<void> {
    await this.call('drop_policy', { name });
    this.parameters.delete(name);
  }

  policyParameters(name: string): number {
    const n = this.parameters.get(name);
    if (n === undefined) throw new TorchEngineError(`no policy named ${name}`, 'request');
    return n;
  }

  async fingerprint(name: string): Promise<string> {
    return String((await this.call('fingerprint', { name })).fingerprint);
  }

  async generate(requests: readonly GenerationRequest[], settings: GenerationSettings): Promise<GeneratedText[]> {
    if (requests.length === 0) return [];
    const r = await this.call('generate', { requests, settings });
    return r.results as GeneratedText[];
  }

  async logprobs(rows: readonly ScoreRequest[]): Promise<(number | null)[][]> {
    if (rows.length === 0) return [];
    return (await this.call('logprobs', { rows })).logprobs as (number | null)[][];
  }

  async nextTokenLogprobs(rows: readonly ScoreRequest[], candidates: readonly number[]): Promise<number[][]> {
    if (rows.length === 0) return [];
    return (await this.call('next_token_logprobs', { rows, candidates })).logprobs as number[][];
  }

  async trainStep(samples: readonly TrainSample[], settings: TrainSettings): Promise<TrainReport> {
    return (await this.call('train_step', { samples, settings })).report as TrainReport;
  }

  async saveOptimizer(name: string, dir: string): Promise<void> {
    await this.call('save_optimizer', { name, dir: path.resolve(dir) });
  }

  async loadOptimizer(name: string, dir: string): Promise<void> {
    await this.call('load_optimizer', { name, dir: path.resolve(dir) });
  }

  async close(): Promise<void> {
    await this.proc.close();
  }
}
