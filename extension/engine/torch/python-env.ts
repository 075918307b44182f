/**
 * Where the PyTorch engine's Python lives. `absp torch setup` creates a virtual environment (by
 * default in the user's cache folder; the test script makes one in the repository's ignored
 * `.absp-cache/`), and everything that starts the engine looks for it in this order: an explicit
 * python (the abspLab.pythonPath user setting, `--python` on the command line), $ABSP_TORCH_PYTHON,
 * the repository's `.absp-cache/torch-venv`, the user's `<cache>/absp-lab/torch-venv`. A run config
 * never names it: a config, like the run directory it is saved in, may come from someone else
 * (docs/threat-model.md), and the Python it names would run with the user's rights.
 * The engine's own code is the package shipped with the extension (extension/torch-engine), put
 * first on PYTHONPATH, so an updated extension never runs an older copy installed in a venv.
 * Every Python starts in that package's folder (`engineCwd`): `python -m` and `python -c` put the
 * working folder first on sys.path, so started in a run directory or a workspace, a `torch.py` or an
 * `absp_torch/` shipped there would be imported instead of the real one.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../model/model-dir';

/** The torch release the CPU set-up pins (a range would download a multi-GB CUDA build). */
export const PINNED_TORCH = '2.13.0';

export function enginePackageDir(): string {
  return path.join(packageRoot(), 'extension', 'torch-engine');
}

export function userCacheDir(): string {
  if (process.env.XDG_CACHE_HOME) return path.join(process.env.XDG_CACHE_HOME, 'absp-lab');
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Caches', 'absp-lab');
  if (process.platform === 'win32') return path.join(process.env.LOCALAPPDATA ?? os.homedir(), 'absp-lab', 'Cache');
  return path.join(os.homedir(), '.cache', 'absp-lab');
}

export function defaultVenvDir(): string {
  return path.join(userCacheDir(), 'torch-venv');
}

/** The venv the repository's test script creates. */
export function repoVenvDir(): string {
  return path.join(packageRoot(), '.absp-cache', 'torch-venv');
}

/** The working folder of every Python the extension starts: its own engine package, never input's. */
export function engineCwd(): string {
  return enginePackageDir();
}

export function venvPython(venv: string): string {
  return process.platform === 'win32' ? path.join(venv, 'Scripts', 'python.exe') : path.join(venv, 'bin', 'python');
}

/** The environment a child Python of the engine runs with. */
export function engineEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const pkg = enginePackageDir();
  return {
    ...base,
    PYTHONPATH: base.PYTHONPATH ? `${pkg}${path.delimiter}${base.PYTHONPATH}` : pkg,
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
  };
}

/** Candidates in order, explicit first; null entries are skipped. */
export function pythonCandidates(explicit?: string | null): string[] {
  const list = [explicit, process.env.ABSP_TORCH_PYTHON, venvPython(repoVenvDir()), venvPython(defaultVenvDir())];
  return [...new Set(list.filter((c): c is string => typeof c === 'string' && c.length > 0 && c !== 'none'))];
}

const cache = new Map<string, boolean>();

/**
 * Exits 0 when the packages the engine needs are installed. It finds them without importing them:
 * importing torch and transformers takes seconds (minutes on a loaded machine), and every command
 * that starts the engine probes first. A package that is installed but broken fails the engine's
 * start with its own traceback; `absp torch doctor` imports everything.
 */
const PROBE = 'import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in ("torch", "transformers", "peft", "safetensors", "numpy")))';

/** Whether this python has what the engine needs (torch, transformers, peft, safetensors, numpy). */
export function pythonWorks(python: string): boolean {
  let ok = cache.get(python);
  if (ok === undefined) {
    if (python.includes(path.sep) && !fs.existsSync(python)) ok = false;
    else {
      const r = spawnSync(python, ['-c', PROBE], { stdio: 'ignore', timeout: 60_000, env: engineEnv(), cwd: engineCwd() });
      ok = r.status === 0;
    }
    cache.set(python, ok);
  }
  return ok;
}

/**
 * The first working Python of the engine, or null. ABSP_TORCH_PYTHON=none means none (tests use
 * it to check the skip path).
 */
export function findEnginePython(explicit?: string | null): string | null {
  // A Python someone named is the one to use: a broken one is an error, not a silent fallback.
  if (explicit) return pythonWorks(explicit) ? explicit : null;
  if (process.env.ABSP_TORCH_PYTHON === 'none') return null;
  for (const c of pythonCandidates()) if (pythonWorks(c)) return c;
  return null;
}

/** What to tell someone whose machine has no working engine environment. */
export function missingEnvironmentMessage(explicit?: string | null): string {
  const tried = explicit ? [explicit] : pythonCandidates();
  return `no Python with PyTorch, transformers and peft was found (tried ${tried.length ? tried.join(', ') : 'nothing'}). Run \`absp torch setup\` (or the command "ABSP: Set Up PyTorch Engine…") to create the engine's environment, or point the abspLab.pythonPath user setting, \`--python\` or ABSP_TORCH_PYTHON at a Python that has them.`;
}

/** pythonWorks without blocking (the extension host must not freeze while torch imports). */
export function pythonWorksAsync(python: string): Promise<boolean> {
  const known = cache.get(python);
  if (known !== undefined) return Promise.resolve(known);
  if (python.includes(path.sep) && !fs.existsSync(python)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const child = spawn(python, ['-c', PROBE], { stdio: 'ignore', env: engineEnv(), cwd: engineCwd() });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', () => (clearTimeout(timer), resolve(false)));
    child.on('exit', (code) => {
      clearTimeout(timer);
      cache.set(python, code === 0);
      resolve(code === 0);
    });
  });
}

/** findEnginePython without blocking. */
export async function findEnginePythonAsync(explicit?: string | null): Promise<string | null> {
  if (explicit) return (await pythonWorksAsync(explicit)) ? explicit : null;
  for (const c of pythonCandidates()) if (await pythonWorksAsync(c)) return c;
  return null;
}
