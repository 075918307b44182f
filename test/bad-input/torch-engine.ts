/**
 * The PyTorch engine's side of the bad-input families: hostile model directories and adapters sent
 * to the engine's Python process through its protocol (the requests the trainer sends), on one
 * engine process per family worker, started in a case's setup so that the deadline measures the
 * request, not the import of torch. Without an engine environment these cases are left out (the
 * torch tests say why they skip).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineProcess } from '../../extension/engine/torch/client';
import { engineCwd, engineEnv, pythonCandidates } from '../../extension/engine/torch/python-env';
import { TorchEngine } from '../../extension/engine/torch/torch-engine';
import { sandboxModelDir } from '../../extension/sandbox/builtin';
import type { BadInputCase } from './harness';

/** A Python of the engine's environment, found without importing torch (twice per family is costly). */
export function torchEnginePresent(): string | null {
  if (process.env.ABSP_TORCH_PYTHON === 'none') return null;
  return pythonCandidates().find((p) => !p.includes(path.sep) || fs.existsSync(p)) ?? null;
}

/** The cases, or none where the machine has no engine environment. */
export function withTorchEngine(cases: BadInputCase[]): BadInputCase[] {
  return torchEnginePresent() ? cases : [];
}

/** Requests and answers take long on a loaded 2-core machine; the bound is against for ever. */
export const TORCH_DEADLINE_MS = 60_000;

let proc: Promise<EngineProcess> | null = null;
let engine: Promise<TorchEngine> | null = null;

/** An engine process that has said hello and opened the sandbox model: each case sends its own `open`. */
export function engineProcess(): Promise<EngineProcess> {
  proc ??= (async () => {
    const p = new EngineProcess({ command: torchEnginePresent()!, args: ['-m', 'absp_torch', 'serve', '--device', 'cpu'], env: { ...engineEnv(), OMP_NUM_THREADS: '1' }, cwd: engineCwd(), label: 'bad-input engine' });
    await p.request('hello');
    // transformers and PEFT imported now (minutes on a loaded machine), not inside a case's deadline.
    await p.request('open', { model: sandboxModelDir(), device: 'cpu', dtype: 'float32' });
    return p;
  })();
  return proc;
}

/** The engine on the sandbox model, as the trainer opens it. */
export function sandboxEngine(): Promise<TorchEngine> {
  engine ??= (async () => {
    const e = TorchEngine.open('builtin:sandbox', { device: 'cpu', dtype: 'float32', threads: 1 });
    await e.ready();
    return e;
  })();
  return engine;
}

export async function closeEngines(): Promise<void> {
  const [p, e] = [proc, engine];
  proc = engine = null;
  await Promise.all([p?.then((x) => x.close()), e?.then((x) => x.close())]);
}

/** A copy of the sandbox model (config.json, weights, tokenizer) to damage. */
export function sandboxModelCopy(dir: string, patch: Record<string, unknown> = {}): string {
  const m = path.join(dir, 'model');
  fs.cpSync(sandboxModelDir(), m, { recursive: true });
  const file = path.join(m, 'config.json');
  fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...patch }));
  return m;
}

/**
 * A protocol-0 pickle that, if anything unpickled it, would create `marker` (os.system): a checkpoint
 * of this kind runs code when torch.load reads it.
 */
export function pickleThatTouches(marker: string): string {
  return `cos\nsystem\n(S'touch ${marker}'\ntR.`;
}
