/**
 * Checkpoints that are never half-written: each is written into its own new folder, then a small
 * pointer file is atomically renamed to name it, then older folders are removed. A crash at any point
 * leaves the pointer naming a complete checkpoint.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../util/atomic';

const POINTER = 'checkpoint.json';

export function latestCheckpoint(root: string): string | null {
  const pointer = path.join(root, POINTER);
  if (!fs.existsSync(pointer)) return null;
  try {
    const { dir } = JSON.parse(fs.readFileSync(pointer, 'utf8')) as { dir: string };
    const full = path.join(root, dir);
    return fs.existsSync(full) ? full : null;
  } catch {
    return null;
  }
}

export function writeCheckpoint(root: string, name: string, write: (dir: string) => void, fresh = true): string {
  fs.mkdirSync(root, { recursive: true });
  const dir = path.join(root, name);
  if (fresh) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir);
  }
  write(dir);
  writeJsonAtomic(path.join(root, POINTER), { dir: name, written: new Date().toISOString() });
  for (const entry of fs.readdirSync(root)) {
    if (entry !== name && entry !== POINTER && entry.startsWith('step-')) fs.rmSync(path.join(root, entry), { recursive: true, force: true });
  }
  return dir;
}

/** writeCheckpoint for writers that wait on another process (the torch engine). */
export async function writeCheckpointAsync(root: string, name: string, write: (dir: string) => Promise<void>): Promise<string> {
  fs.mkdirSync(root, { recursive: true });
  const dir = path.join(root, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  await write(dir);
  return writeCheckpoint(root, name, () => undefined, false);
}
