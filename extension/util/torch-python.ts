/**
 * Finds a Python that can import PyTorch (for the benchmark's PyTorch side and the parity tests): the
 * first of $ABSP_TORCH_PYTHON, python3 and /usr/bin/python3 that can `import torch, numpy`.
 * ABSP_TORCH_PYTHON=none disables it. The answer is cached for the life of the process.
 */
import { spawnSync } from 'node:child_process';

let cachedPython: string | null | undefined;

export function findTorchPython(): string | null {
  if (cachedPython !== undefined) return cachedPython;
  if (process.env.ABSP_TORCH_PYTHON === 'none') return (cachedPython = null);
  const candidates = [process.env.ABSP_TORCH_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => typeof c === 'string' && c.length > 0);
  cachedPython = null;
  for (const c of [...new Set(candidates)]) {
    const r = spawnSync(c, ['-c', 'import torch, numpy'], { stdio: 'ignore', timeout: 120_000 });
    if (r.status === 0) {
      cachedPython = c;
      break;
    }
  }
  return cachedPython;
}
