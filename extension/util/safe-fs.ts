/**
 * File access for folders someone else may have written (a run directory, an adapter, a model):
 * no open follows a symbolic link, no open blocks on a FIFO or a device, and nothing is read whole
 * past a size limit. A symbolic link inside a run directory could point a write at a shell rc file or
 * a read at a secret; a FIFO named run.json would block the reading thread for ever.
 *
 * Opens use O_NOFOLLOW (the last path component must not be a link) and O_NONBLOCK (a FIFO opens at
 * once), then fstat the descriptor: only a regular file is used. Folders a writer creates inside a
 * run are checked component by component with lstat (`ensureRealDir`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Why a file was not opened: it is a link, not a regular file, or too large. The message names it. */
export class UnsafeFileError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'UnsafeFileError';
  }
}

const C = fs.constants;
/** 0 where the platform has no such flag (Windows): the lstat checks below still apply there. */
const NOFOLLOW = C.O_NOFOLLOW ?? 0;
const NONBLOCK = C.O_NONBLOCK ?? 0;

export type OpenMode = 'read' | 'append' | 'update';

const FLAGS: Record<OpenMode, number> = {
  read: C.O_RDONLY | NOFOLLOW | NONBLOCK,
  append: C.O_WRONLY | C.O_APPEND | C.O_CREAT | NOFOLLOW | NONBLOCK,
  update: C.O_RDWR | NOFOLLOW | NONBLOCK,
};

function describeKind(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isDirectory()) return 'a folder';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/**
 * Opens a regular file without following a symbolic link or blocking. ENOENT is thrown as is (callers
 * treat a missing file as absent); a link or a non-regular file is an UnsafeFileError.
 */
export function openRegular(file: string, mode: OpenMode): number {
  if (NOFOLLOW === 0) {
    // No O_NOFOLLOW here: refuse a link seen by lstat (a race remains, as on such platforms generally).
    try {
      if (fs.lstatSync(file).isSymbolicLink()) throw new UnsafeFileError(file, 'is a symbolic link; links are not followed');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || mode !== 'append') throw e;
    }
  }
  let fd: number;
  try {
    fd = fs.openSync(file, FLAGS[mode], 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Linux says ELOOP for a final link under O_NOFOLLOW; some systems say EMLINK or EFTYPE.
    if (code === 'ELOOP' || code === 'EMLINK' || code === 'EFTYPE') throw new UnsafeFileError(file, 'is a symbolic link; links are not followed');
    if (code === 'ENXIO') throw new UnsafeFileError(file, 'is a FIFO (named pipe) or a device, not a regular file');
    if (code === 'EISDIR') throw new UnsafeFileError(file, 'is a folder, not a regular file');
    throw e;
  }
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new UnsafeFileError(file, `is ${describeKind(st)}, not a regular file`);
  }
  return fd;
}

/** Reads a whole regular file of at most `maxBytes` (a larger one is an error naming the limit). */
export function readRegularFile(file: string, maxBytes: number): Buffer {
  const fd = openRegular(file, 'read');
  try {
    const size = fs.fstatSync(fd).size;
    if (size > maxBytes) throw new UnsafeFileError(file, `is ${size} bytes, more than the ${maxBytes}-byte limit for this file`);
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const n = fs.readSync(fd, buf, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return done === size ? buf : buf.subarray(0, done);
  } finally {
    fs.closeSync(fd);
  }
}

export function readTextFile(file: string, maxBytes: number): string {
  return readRegularFile(file, maxBytes).toString('utf8');
}

/** lstat, or null when the path does not exist. */
export function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Makes `root/...parts` a folder, creating what is missing; every existing component below `root`
 * must be a real folder, not a link or a file. Returns the folder's path. `root` itself is the
 * caller's (the run directory as the user named it) and is not checked.
 */
export function ensureRealDir(root: string, ...parts: string[]): string {
  let dir = root;
  for (const part of parts.flatMap((p) => p.split(/[\\/]/)).filter(Boolean)) {
    if (part === '..' || part === '.') throw new UnsafeFileError(path.join(dir, part), 'is not a plain folder name');
    dir = path.join(dir, part);
    const st = lstatOrNull(dir);
    if (st === null) {
      try {
        fs.mkdirSync(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const made = fs.lstatSync(dir);
      if (!made.isDirectory()) throw new UnsafeFileError(dir, `is ${describeKind(made)}, not a folder`);
    } else if (!st.isDirectory()) {
      throw new UnsafeFileError(dir, st.isSymbolicLink() ? 'is a symbolic link; links inside a run directory are not followed' : `is ${describeKind(st)}, not a folder`);
    }
  }
  return dir;
}

/** Whether `p` is a real folder (not a link to one). */
export function isRealDir(p: string): boolean {
  const st = lstatOrNull(p);
  return st !== null && st.isDirectory();
}

/**
 * Names of the real sub-folders of `dir` (links and files left out); [] when it cannot be listed or
 * is itself a link (a folder inside a run that points out of it is not entered).
 */
export function realSubfolders(dir: string): string[] {
  if (!isRealDir(dir)) return [];
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}

/** Names of the regular files in `dir` (links, FIFOs and folders left out); [] when it cannot be listed or is a link. */
export function regularFiles(dir: string): string[] {
  if (!isRealDir(dir)) return [];
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isFile()).map((d) => d.name);
  } catch {
    return [];
  }
}

/** Whether `p` exists as a regular file (not a link to one). */
export function isRegularFile(p: string): boolean {
  const st = lstatOrNull(p);
  return st !== null && st.isFile();
}

/**
 * The first folder between `root` and `file` (exclusive of both) that is a link or not a folder, or
 * null: O_NOFOLLOW covers only a path's last component, so a reader of `root/a/b/file` checks `a` and
 * `a/b` with this.
 */
export function linkOnPath(root: string, file: string): string | null {
  const rel = path.relative(root, path.dirname(file));
  if (rel === '' ) return null;
  if (rel.startsWith('..') || path.isAbsolute(rel)) return path.dirname(file);
  let dir = root;
  for (const part of rel.split(path.sep)) {
    dir = path.join(dir, part);
    const st = lstatOrNull(dir);
    if (st === null) return null; // absent: the open reports it
    if (!st.isDirectory()) return dir;
  }
  return null;
}
