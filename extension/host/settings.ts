/**
 * The extension's settings, resolved to absolute paths and checked values. Pure (the host reads the raw
 * values from `vscode.workspace.getConfiguration('abspLab')` and passes them in) so that the rules —
 * relative folders are relative to the first workspace folder, an unknown engine falls back to the
 * built-in one — are tested without an editor.
 */
import * as path from 'node:path';

export const SETTINGS_SECTION = 'abspLab';

export type EngineKind = 'ort' | 'torch';

export interface RawSettings {
  runsFolder?: unknown;
  defaultEngine?: unknown;
  nodePath?: unknown;
  pythonPath?: unknown;
  configGlob?: unknown;
}

export interface HostSettings {
  /** Absolute folder the Runs view lists and new runs are written to. */
  runsFolder: string;
  defaultEngine: EngineKind;
  /** The Node executable that runs `absp`; empty: the editor's own runtime (ELECTRON_RUN_AS_NODE). */
  nodePath: string;
  /** The Python of the torch engine; empty: the environment "ABSP: Set Up PyTorch Engine…" made. */
  pythonPath: string;
  /** Glob of run configs offered by "Start Run". */
  configGlob: string;
}

export const DEFAULT_CONFIG_GLOB = '**/*.absp.json';
export const DEFAULT_RUNS_FOLDER = 'runs';

const str = (v: unknown): string => (typeof v === 'string' ? v.trim() : '');

/**
 * `workspaceRoot` is the first workspace folder (undefined in an empty window); `fallbackRoot` is where
 * runs go without one (the extension's global storage), so a run never lands in the editor's cwd.
 */
export function resolveSettings(raw: RawSettings, workspaceRoot: string | undefined, fallbackRoot: string): HostSettings {
  const base = workspaceRoot ?? fallbackRoot;
  const runs = str(raw.runsFolder) || DEFAULT_RUNS_FOLDER;
  return {
    runsFolder: path.resolve(base, expandHome(runs)),
    defaultEngine: raw.defaultEngine === 'torch' ? 'torch' : 'ort',
    nodePath: expandHome(str(raw.nodePath)),
    pythonPath: expandHome(str(raw.pythonPath)),
    configGlob: str(raw.configGlob) || DEFAULT_CONFIG_GLOB,
  };
}

function expandHome(p: string): string {
  if (p === '~' || p.startsWith('~/')) return path.join(process.env.HOME ?? '', p.slice(1));
  return p;
}

/** What `userSetting` needs of a configuration (vscode.WorkspaceConfiguration has it). */
export interface InspectableSettings {
  inspect<T>(key: string): { defaultValue?: T; globalValue?: T; workspaceValue?: T; workspaceFolderValue?: T } | undefined;
}

/**
 * A setting's value from the user's own settings (or its default), whatever a workspace or folder
 * says: the executables the host starts (`nodePath`, `pythonPath`) must not be chosen by a workspace
 * someone else wrote.
 */
export function userSetting(c: InspectableSettings, key: string): unknown {
  const i = c.inspect<unknown>(key);
  return i?.globalValue ?? i?.defaultValue;
}

/**
 * Starting a process (a run, a resume, cross-play, an evaluation) needs a trusted workspace: in
 * Restricted Mode runs can be viewed, not run (package.json's capabilities.untrustedWorkspaces).
 */
export function requireTrust(isTrusted: boolean, action: string): void {
  if (!isTrusted) throw new Error(`${action} starts a process, which Restricted Mode does not allow; trust this workspace first (Manage Workspace Trust). Viewing runs works without it.`);
}
