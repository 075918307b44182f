/**
 * `absp models import-gguf`: a GGUF file into a Hugging Face model directory, done by the Python
 * module absp_torch.gguf_import (transformers' GGUF reader, then our checks and repairs) in the
 * project's Python environment. Its progress is passed on line by line; a problem with the input is
 * its one-line error.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { enginePackageDir, engineEnv } from '../engine/torch/python-env';

export class ModelImportError extends Error {}

/** What the import wrote (absp-import.json holds the same). */
export interface ImportedModel {
  dir: string;
  files: string[];
  source: { file: string; sha256: string; bytes: number; name: string | null; license: string | null; tensor_types: Record<string, number> };
  dtype: 'float32' | 'bfloat16';
  architecture: string;
  eos_token: string;
  fixes: string[];
  check: Record<string, number>;
  transformers: string;
  torch: string;
  created: string;
}

/** Runs `python -m absp_torch.<module> ...args` with the package first on PYTHONPATH; resolves to the last stdout line parsed as JSON. */
export function runPythonModule<T>(python: string, module: string, args: readonly string[], log: (line: string) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-m', `absp_torch.${module}`, ...args], { env: engineEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    const errLines: string[] = [];
    let partial = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => {
      const text = partial + d.toString('utf8');
      const lines = text.split(/\r?\n/);
      partial = lines.pop() ?? '';
      for (const line of lines) {
        // Progress bars redraw with carriage returns; only their last state is a line worth showing.
        const shown = line.split('\r').pop()!.trimEnd();
        if (shown === '') continue;
        errLines.push(shown);
        if (errLines.length > 20) errLines.shift();
        if (!shown.startsWith('error: ')) log(shown);
      }
    });
    child.on('error', (e: NodeJS.ErrnoException) => reject(new ModelImportError(`cannot run Python ${python}: ${e.code ?? e.message}`)));
    child.on('close', (code, signal) => {
      if (partial.trim()) errLines.push(partial.split('\r').pop()!.trim());
      const problem = errLines.filter((l) => l.startsWith('error: ')).pop();
      if (code === 0) {
        const last = stdout.trim().split('\n').pop() ?? '';
        try {
          resolve(JSON.parse(last) as T);
        } catch {
          reject(new ModelImportError(`absp_torch.${module} printed no result (${last.slice(0, 200) || 'nothing'})`));
        }
        return;
      }
      if (problem) return reject(new ModelImportError(problem.slice('error: '.length)));
      const tail = errLines.slice(-3).join(' | ') || 'no output';
      if (/No module named 'absp_torch|No module named absp_torch/.test(tail)) return reject(new ModelImportError(`Python ${python} cannot find the absp_torch package (${enginePackageDir()})`));
      reject(new ModelImportError(`absp_torch.${module} failed (${signal ?? `exit ${code}`}): ${tail}`));
    });
  });
}

export interface ImportOptions {
  python: string;
  dtype?: 'float32' | 'bfloat16';
  eos?: string;
  log?: (line: string) => void;
}

export function importGguf(file: string, out: string, o: ImportOptions): Promise<ImportedModel> {
  const args = [path.resolve(file), path.resolve(out), '--dtype', o.dtype ?? 'float32', ...(o.eos ? ['--eos', o.eos] : [])];
  return runPythonModule<ImportedModel>(o.python, 'gguf_import', args, o.log ?? (() => {}));
}
