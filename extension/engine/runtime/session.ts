/**
 * Runs a builder Graph on ONNX Runtime (onnxruntime-node, CPU). Feeds and results are plain typed
 * arrays with shapes, so nothing above this file touches ORT's types.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { DType, HostTensor, TypedArray } from '../graph/dtype';
import { Graph } from '../graph/graph';
import { emitOnnx } from '../graph/onnx';

export interface SessionOptions {
  threads?: number;
  /** Initializers of at least this many bytes go to an external file (needed past 2 GiB of weights). */
  externalThreshold?: number;
}

/** Threads for ORT's intra-op pool: the user's ABSP_THREADS, else every core. */
export function defaultThreads(): number {
  const fromEnv = Number(process.env.ABSP_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  return Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length);
}

const TWO_GIB_MARGIN = 1.5 * 2 ** 30;

export class GraphSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    private readonly cleanup: () => void,
  ) {}

  static async create(graph: Graph, options: SessionOptions = {}): Promise<GraphSession> {
    let totalBytes = 0;
    for (const c of graph.initializers.values()) totalBytes += c.data.byteLength;
    const threshold = options.externalThreshold ?? (totalBytes > TWO_GIB_MARGIN ? 1 << 20 : Infinity);
    const emitted = emitOnnx(graph, { externalThreshold: threshold, externalFileName: 'weights.bin' });
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: options.threads ?? defaultThreads(),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      enableCpuMemArena: true,
      enableMemPattern: true,
    };
    let session: ort.InferenceSession;
    let cleanup = () => {};
    if (emitted.externalData.length > 0) {
      // External data is resolved relative to the model file, so both go to a private folder.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'absp-onnx-'));
      const modelPath = path.join(dir, 'model.onnx');
      fs.writeFileSync(modelPath, emitted.model);
      const fd = fs.openSync(path.join(dir, 'weights.bin'), 'w');
      try {
        for (const chunk of emitted.externalData) fs.writeSync(fd, chunk);
      } finally {
        fs.closeSync(fd);
      }
      session = await ort.InferenceSession.create(modelPath, sessionOptions);
      cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
    } else {
      session = await ort.InferenceSession.create(emitted.model, sessionOptions);
    }
    return new GraphSession(session, session.inputNames, session.outputNames, cleanup);
  }

  async run(feeds: Record<string, HostTensor>, fetch?: readonly string[]): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      const t = feeds[name];
      if (!t) throw new Error(`missing graph input ${name}`);
      ortFeeds[name] = new ort.Tensor(t.dtype, t.data as never, t.dims as number[]);
    }
    const results = fetch ? await this.session.run(ortFeeds, fetch as string[]) : await this.session.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [name, value] of Object.entries(results)) {
      out[name] = { dtype: value.type as DType, dims: value.dims, data: value.data as TypedArray };
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
    this.cleanup();
  }
}
