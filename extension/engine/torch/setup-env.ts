/**
 * `absp torch setup` and `absp torch doctor`: the engine's virtual environment, created with the
 * Python's own venv module and pip (torch pinned first, so that pip never swaps in another build),
 * and a report of what an environment has, from the engine package itself.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { PINNED_TORCH, defaultVenvDir, enginePackageDir, engineEnv, venvPython, engineCwd } from './python-env';

export interface DoctorReport {
  ok: boolean;
  python: string;
  problems: string[];
  torch?: string;
  transformers?: string | null;
  peft?: string | null;
  accelerate?: string | null;
  safetensors?: string | null;
  devices?: string[];
  protocol?: number;
  [key: string]: unknown;
}

export interface SetupOptions {
  /** The Python that creates the venv (default python3). */
  python?: string;
  venv?: string;
  /** Install the CUDA build of torch (PyPI's default wheels on Linux) instead of insisting on the pin's CPU build. */
  cuda?: boolean;
  torchVersion?: string;
  /** An index for torch alone, e.g. PyTorch's CPU-only wheel index on a machine without a local wheel. */
  torchIndexUrl?: string;
  /** Each line of progress (stage lines and pip's own output). */
  log: (line: string) => void;
  /** Stage k of n, for a progress bar or notification. */
  stage?: (k: number, n: number, title: string) => void;
}

function run(command: string, args: string[], log: (line: string) => void, env?: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env, cwd: engineCwd() });
    const tail: string[] = [];
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      log(line);
    };
    readline.createInterface({ input: child.stdout }).on('line', onLine);
    readline.createInterface({ input: child.stderr }).on('line', onLine);
    child.on('error', (e) => reject(new Error(`${command} could not start: ${e.message}`)));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${[command, ...args].join(' ')} failed (exit ${code}):\n${tail.slice(-8).join('\n')}`))));
  });
}

export async function setupTorchEnv(o: SetupOptions): Promise<DoctorReport> {
  const venv = path.resolve(o.venv ?? defaultVenvDir());
  const base = o.python ?? 'python3';
  const py = venvPython(venv);
  const pkg = enginePackageDir();
  const torchSpec = `torch==${o.torchVersion ?? PINNED_TORCH}`;
  const stages = 5;
  const check = spawnSync(base, ['-c', 'import sys; assert sys.version_info >= (3, 10), sys.version'], { encoding: 'utf8', cwd: engineCwd() });
  if (check.error) throw new Error(`${base} could not start (${check.error.message}): pass --python with a Python 3.10 or later`);
  if (check.status !== 0) throw new Error(`${base} is not Python 3.10 or later: pass --python with a newer one`);

  o.stage?.(1, stages, `creating the virtual environment ${venv}`);
  if (!fs.existsSync(py)) {
    fs.mkdirSync(path.dirname(venv), { recursive: true });
    await run(base, ['-m', 'venv', venv], o.log).catch((e: Error) => {
      throw new Error(`${e.message}\n(on Debian and Ubuntu: apt-get install python3-venv)`);
    });
  } else o.log(`${venv} exists; installing into it`);
  const pip = (args: string[]) => run(py, ['-m', 'pip', 'install', '--progress-bar', 'off', ...args], o.log);

  o.stage?.(2, stages, `installing ${torchSpec}${o.cuda ? ' (CUDA build)' : ''}`);
  await pip([torchSpec, ...(o.torchIndexUrl ? ['--index-url', o.torchIndexUrl] : [])]);

  o.stage?.(3, stages, 'installing transformers, peft, accelerate, safetensors');
  // The installed torch satisfies the package's range, so pip keeps it.
  await pip(['-r', path.join(pkg, 'requirements.txt')]);

  o.stage?.(4, stages, 'installing the engine package');
  await pip(['--no-deps', '--no-build-isolation', pkg]).catch(async () => pip(['--no-deps', pkg]));

  o.stage?.(5, stages, 'checking the environment');
  const report = await doctor(py);
  fs.writeFileSync(path.join(venv, 'absp-torch.json'), JSON.stringify({ created: new Date().toISOString(), torch: torchSpec, cuda: !!o.cuda, report }, null, 2) + '\n');
  return report;
}

/** What an environment has, from `python -m absp_torch doctor` run with the shipped package. */
export async function doctor(python: string): Promise<DoctorReport> {
  const r = spawnSync(python, ['-m', 'absp_torch', 'doctor'], { encoding: 'utf8', env: engineEnv(), timeout: 300_000, cwd: engineCwd() });
  if (r.error) return { ok: false, python, problems: [`${python} could not start: ${r.error.message}`] };
  const line = (r.stdout ?? '').trim().split('\n').filter(Boolean).pop() ?? '';
  try {
    const report = JSON.parse(line) as DoctorReport;
    return { ...report, python: report.python ?? python };
  } catch {
    const err = (r.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    return { ok: false, python, problems: [`${python} -m absp_torch doctor failed (exit ${r.status}): ${err || 'no output'}`] };
  }
}
