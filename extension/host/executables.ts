/**
 * Finding the programs the host starts: the Node that runs `absp` and, for the torch engine, Python.
 * A missing executable must become one clear sentence naming the setting to fix, before anything is
 * spawned — a spawn ENOENT arrives later, asynchronously, and says nothing about settings.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export class MissingExecutableError extends Error {
  constructor(
    readonly what: string,
    readonly setting: string,
    readonly value: string,
    why: string,
  ) {
    super(`The ${what} "${value}" ${why}. Set "${setting}" to the full path of a working ${what}${setting === 'abspLab.nodePath' ? ', or leave it empty to use the editor\'s own runtime' : ''}.`);
    this.name = 'MissingExecutableError';
  }
}

/** How to start Node: the command and what to add to its environment. */
export interface NodeCommand {
  command: string;
  env: Record<string, string>;
  /** For the log: which Node this is and why. */
  description: string;
}

function isExecutableFile(file: string): boolean {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) return false;
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The file a command name resolves to on PATH (or the path itself when it has a slash), or null. */
export function findExecutable(command: string, envPath: string | undefined = process.env.PATH): string | null {
  if (command.includes('/') || command.includes(path.sep)) return isExecutableFile(command) ? path.resolve(command) : null;
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    if (isExecutableFile(candidate)) return candidate;
  }
  return null;
}

function requireExecutable(what: string, setting: string, value: string, envPath: string | undefined): string {
  const found = findExecutable(value, envPath);
  if (found) return found;
  const where = value.includes('/') ? (fs.existsSync(value) ? 'is not an executable file' : 'does not exist') : 'was not found on the PATH';
  throw new MissingExecutableError(what, setting, value, where);
}

/**
 * The Node that runs the `absp` child process. With no setting it is the editor's own executable: in
 * VS Code that is Electron, which behaves as plain Node under ELECTRON_RUN_AS_NODE=1 (the variable is
 * harmless where execPath already is Node, as in code-server).
 */
export function resolveNodeCommand(nodePath: string, runtime: { execPath: string; electron?: string } = { execPath: process.execPath, electron: process.versions.electron }, envPath?: string): NodeCommand {
  if (nodePath) {
    const command = requireExecutable('node executable', 'abspLab.nodePath', nodePath, envPath);
    return { command, env: {}, description: `${command} (setting abspLab.nodePath)` };
  }
  if (!isExecutableFile(runtime.execPath)) {
    throw new MissingExecutableError('node executable', 'abspLab.nodePath', runtime.execPath, 'is not an executable file');
  }
  return {
    command: runtime.execPath,
    env: { ELECTRON_RUN_AS_NODE: '1' },
    description: runtime.electron ? `${runtime.execPath} (the editor's Electron ${runtime.electron}, run as Node)` : `${runtime.execPath} (the editor's Node ${process.version})`,
  };
}

/** The Python of the torch engine; checked before a torch run is started. */
export function resolvePython(pythonPath: string, envPath?: string): string {
  return requireExecutable('python executable', 'abspLab.pythonPath', pythonPath || 'python3', envPath);
}

/** The torch engine's environment is missing or broken; the message says what to run. */
export class MissingTorchEnvironmentError extends Error {
  constructor(readonly python: string | null) {
    super(
      python
        ? `The Python "${python}" cannot import torch, transformers and peft. Run "ABSP: Set Up PyTorch Engine…" (or \`absp torch setup\`) and clear abspLab.pythonPath, or point it at a Python that has them.`
        : 'The PyTorch engine has no environment yet. Run "ABSP: Set Up PyTorch Engine…" (or `absp torch setup` in a terminal), or set abspLab.pythonPath to a Python with torch, transformers and peft.',
    );
    this.name = 'MissingTorchEnvironmentError';
  }
}

/**
 * The Python a torch run will use: the abspLab.pythonPath setting (user or machine scope only), else
 * the set-up environment; checked (without blocking) before anything is started. Never a run
 * config's choice: a config or run directory may come from someone else (docs/threat-model.md).
 */
export async function resolveTorchPython(settingPython: string, find: (explicit?: string | null) => Promise<string | null>): Promise<string> {
  const explicit = settingPython || null;
  if (explicit && (explicit.includes('/') || explicit.includes(path.sep)) && !fs.existsSync(explicit)) {
    throw new MissingExecutableError('python executable', 'abspLab.pythonPath', explicit, 'does not exist');
  }
  const found = await find(explicit);
  if (!found) throw new MissingTorchEnvironmentError(explicit);
  return found;
}
