/**
 * The built-in sandbox model shipped in `models/sandbox/`: where it is, and whether it is intact. A
 * missing or damaged file must not surface as a cryptic tensor or JSON error deep in the engine, so
 * every file is checked against the sizes and SHA-256 digests that `absp sandbox build` recorded in
 * build.json, and any problem is reported once, naming the file and the command that rebuilds it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUILTIN_SANDBOX, resolveModelDir } from '../engine/model/model-dir';
import { OrtEngine, type OrtEngineOptions } from '../engine/ort-engine';

export const REBUILD_COMMAND = 'npx absp sandbox build';

/** The files of a sandbox model directory besides build.json, which describes them. */
export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'] as const;
export const BUILD_FILE = 'build.json';

export interface FileDigest {
  bytes: number;
  sha256: string;
}

export class SandboxModelError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file} ${problem}. Rebuild the built-in sandbox model with \`${REBUILD_COMMAND}\` (in the extension's folder; it takes a few minutes).`);
  }
}

/** The shipped model's folder (`<package>/models/sandbox`). */
export function sandboxModelDir(): string {
  return resolveModelDir(BUILTIN_SANDBOX);
}

export function fileDigest(file: string): FileDigest {
  const data = fs.readFileSync(file);
  return { bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

export interface SandboxModelInfo {
  dir: string;
  /** The parsed build.json (provenance, profile and digests). */
  build: Record<string, unknown> & { seed: number; files: Record<string, FileDigest> };
}

function readBuild(dir: string): SandboxModelInfo['build'] {
  const file = path.join(dir, BUILD_FILE);
  if (!fs.existsSync(dir)) throw new SandboxModelError(dir, 'does not exist');
  if (!fs.existsSync(file)) throw new SandboxModelError(file, 'is missing');
  let build: unknown;
  try {
    build = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new SandboxModelError(file, `is corrupted (not valid JSON: ${(e as Error).message})`);
  }
  const b = build as SandboxModelInfo['build'];
  const digestsOk = b && typeof b === 'object' && b.files && typeof b.files === 'object' && MODEL_FILES.every((f) => typeof b.files[f]?.sha256 === 'string' && typeof b.files[f]?.bytes === 'number');
  if (!digestsOk || typeof b.seed !== 'number') throw new SandboxModelError(file, 'is corrupted (it lacks the seed or the digests of the model files)');
  return b;
}

/**
 * Checks a sandbox model directory (default: the built-in one) file by file and returns its build
 * record; throws a SandboxModelError naming the first missing or damaged file.
 */
export function checkSandboxModel(dir: string = sandboxModelDir()): SandboxModelInfo {
  const build = readBuild(dir);
  for (const name of MODEL_FILES) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) throw new SandboxModelError(file, 'is missing');
    const expected = build.files[name];
    const actual = fileDigest(file);
    if (actual.bytes !== expected.bytes) throw new SandboxModelError(file, `is corrupted (${actual.bytes} bytes, build.json records ${expected.bytes})`);
    if (actual.sha256 !== expected.sha256) throw new SandboxModelError(file, 'is corrupted (its SHA-256 digest does not match the one recorded in build.json)');
  }
  return { dir, build };
}

/** Opens the built-in model (or another sandbox model directory) on the ONNX Runtime engine, after checking it. */
export function openSandboxEngine(options: OrtEngineOptions & { dir?: string } = {}): OrtEngine {
  const { dir = sandboxModelDir(), ...engineOptions } = options;
  checkSandboxModel(dir);
  return OrtEngine.open(dir, engineOptions);
}

/** Checks the shipped model when `spec` names it (a clear message and the rebuild command if damaged). */
export function checkIfBuiltin(spec: string): void {
  if (spec === BUILTIN_SANDBOX) checkSandboxModel(resolveModelDir(spec));
}
