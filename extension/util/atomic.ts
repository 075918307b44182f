/**
 * Durable file writes: a reader (or a crash) sees either the old file or the new one, never half of
 * one. Data goes to a temporary file in the same folder, is flushed, then renamed over the target.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/** Makes a rename durable; some platforms cannot open folders, which is harmless there. */
export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* not supported on this platform */
  }
}

/**
 * Appends whole lines: each record is one write() of a complete line on a file opened for appending,
 * so a concurrent reader sees a record entirely or not at all.
 */
export function appendLine(file: string, line: string): void {
  if (line.includes('\n')) throw new Error('appendLine: a record must not contain a newline');
  const fd = fs.openSync(file, 'a');
  try {
    fs.writeSync(fd, Buffer.from(line + '\n', 'utf8'));
  } finally {
    fs.closeSync(fd);
  }
}
