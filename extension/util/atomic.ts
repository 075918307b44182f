/**
 * Durable file writes: a reader (or a crash) sees either the old file or the new one, never half of
 * one. Data goes to a temporary file in the same folder, is flushed, then renamed over the target.
 * Neither the temporary file nor an appended log is opened through a symbolic link (safe-fs.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lstatOrNull, openRegular } from './safe-fs';

const NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;
/** `.<name>.<pid>.<ms>.tmp`: what writeFileAtomic leaves behind when it is killed mid-write. */
const TEMP_FILE = /^\..+\.(\d+)\.(\d+)\.tmp$/;

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  // O_EXCL: a name planted in advance (a link to elsewhere) is an error, never written through.
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | NOFOLLOW, 0o644);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    // rename replaces a link at `file` itself; it never writes through it.
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

/** Flushes an appended log to disk (a missing file is nothing to flush). */
export function fsyncFile(file: string): void {
  let fd: number;
  try {
    fd = openRegular(file, 'read');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Appends whole lines: each record is one write() of a complete line on a file opened for appending,
 * so a concurrent reader sees a record entirely or not at all. The file must be a regular file or
 * absent: a link or a FIFO in its place is an error, never followed.
 */
export function appendLine(file: string, line: string): void {
  if (line.includes('\n')) throw new Error('appendLine: a record must not contain a newline');
  const fd = openRegular(file, 'append');
  try {
    fs.writeSync(fd, Buffer.from(line + '\n', 'utf8'));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Removes the temporary files of atomic writes that a killed process left in `dir` and its real
 * sub-folders (links are not entered), when the process that made them is gone. Returns their paths.
 */
export function removeStaleTempFiles(dir: string, isAlive: (pid: number) => boolean, maxDepth = 4): string[] {
  const removed: string[] = [];
  const walk = (d: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (depth < maxDepth) walk(p, depth + 1);
        continue;
      }
      const m = TEMP_FILE.exec(e.name);
      if (!m || !e.isFile()) continue;
      const pid = Number(m[1]);
      if (pid > 1 && pid !== process.pid && isAlive(pid)) continue;
      if (pid === process.pid) continue;
      const st = lstatOrNull(p);
      if (st?.isFile()) {
        fs.rmSync(p, { force: true });
        removed.push(p);
      }
    }
  };
  walk(dir, 0);
  return removed;
}
