/**
 * Incremental reading of an append-only JSONL file that another process may be writing right now.
 * Only complete lines (ending in "\n") are consumed; a partial last line is left for the next read,
 * which starts again at the first byte not yet consumed. Lines that are not JSON or fail their schema
 * are skipped and reported, never fatal. Reads only: it never writes to the file.
 *
 * Bounded for files someone else wrote: a line longer than MAX_LINE_BYTES is skipped (its bytes are
 * read once, never buffered whole nor read again on the next poll), and a link or a FIFO in the file's
 * place is reported as a problem, not followed or waited on.
 */
import * as fs from 'node:fs';
import type { z } from 'zod';
import { linkOnPath, openRegular, UnsafeFileError } from '../util/safe-fs';
import { describeIssues } from './schema';

/** The longest record a reader accepts (a transcript line of many long turns is well below it). */
export const MAX_LINE_BYTES = 8 * 1024 * 1024;

export interface SkippedLine {
  file: string;
  /** 1-based line number in the file; 0 for the file as a whole. */
  line: number;
  problem: string;
}

export interface TailRead<T> {
  records: T[];
  skipped: SkippedLine[];
  /** The file shrank or was replaced since the last read, so it was read again from the start. */
  restarted: boolean;
}

/** Files are read in slices so that a large log does not need one buffer of its whole size. */
const CHUNK_BYTES = 4 * 1024 * 1024;

export class JsonlTail<T> {
  private offset = 0;
  private lineNo = 0;
  private identity: string | null = null;
  /** Inside a line already found too long: its remaining bytes are dropped up to its newline. */
  private skippingLong = false;
  private unsafeReported = false;
  /** The incomplete last line read so far (at `offset`), kept so the next poll reads only new bytes. */
  private pending: Buffer = Buffer.alloc(0);

  constructor(
    readonly file: string,
    private readonly schema: z.ZodType<T>,
    private readonly maxLineBytes = MAX_LINE_BYTES,
    /** The run directory the file lies in: no folder between it and the file may be a link. */
    private readonly root: string | null = null,
  ) {}

  /** Bytes consumed so far (the start of the first line not yet complete). */
  get position(): number {
    return this.offset;
  }

  read(): TailRead<T> {
    const out: TailRead<T> = { records: [], skipped: [], restarted: false };
    let fd: number;
    try {
      const link = this.root === null ? null : linkOnPath(this.root, this.file);
      if (link !== null) throw new UnsafeFileError(this.file, `lies under ${link}, which is a symbolic link or not a folder`);
      fd = openRegular(this.file, 'read');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
      if (e instanceof UnsafeFileError) {
        if (!this.unsafeReported) out.skipped.push({ file: this.file, line: 0, problem: `not read: it ${e.problem}` });
        this.unsafeReported = true;
        return out;
      }
      throw e;
    }
    this.unsafeReported = false;
    try {
      const st = fs.fstatSync(fd);
      const identity = `${st.dev}:${st.ino}`;
      if ((this.identity !== null && identity !== this.identity) || st.size < this.offset) {
        // Append-only files never shrink; if this one did, it was replaced, and all of it is new.
        this.offset = 0;
        this.lineNo = 0;
        this.skippingLong = false;
        this.pending = Buffer.alloc(0);
        out.restarted = true;
      }
      this.identity = identity;
      let carry = this.pending;
      let pos = this.offset + this.pending.length;
      while (pos < st.size) {
        const chunk = Buffer.alloc(Math.min(CHUNK_BYTES, st.size - pos));
        const n = fs.readSync(fd, chunk, 0, chunk.length, pos);
        if (n === 0) break;
        pos += n;
        let data = carry.length ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
        carry = Buffer.alloc(0);
        if (this.skippingLong) {
          const end = data.indexOf(0x0a);
          if (end < 0) {
            // Still inside the long line: consumed, never kept.
            this.offset += data.length;
            continue;
          }
          this.offset += end + 1;
          data = data.subarray(end + 1);
          this.skippingLong = false;
        }
        const lastNewline = data.lastIndexOf(0x0a);
        if (lastNewline >= 0) {
          this.consume(data.subarray(0, lastNewline), out);
          this.offset += lastNewline + 1;
          data = data.subarray(lastNewline + 1);
        }
        if (data.length > this.maxLineBytes) {
          this.lineNo++;
          out.skipped.push({ file: this.file, line: this.lineNo, problem: `line longer than ${this.maxLineBytes} bytes; skipped` });
          this.offset += data.length;
          this.skippingLong = true;
          continue;
        }
        carry = data;
      }
      this.pending = Buffer.from(carry);
    } finally {
      fs.closeSync(fd);
    }
    return out;
  }

  private consume(block: Buffer, out: TailRead<T>): void {
    for (const text of block.toString('utf8').split('\n')) {
      this.lineNo++;
      if (Buffer.byteLength(text) > this.maxLineBytes) {
        out.skipped.push({ file: this.file, line: this.lineNo, problem: `line longer than ${this.maxLineBytes} bytes; skipped` });
        continue;
      }
      const line = text.endsWith('\r') ? text.slice(0, -1) : text;
      if (line.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (e) {
        out.skipped.push({ file: this.file, line: this.lineNo, problem: describeJsonError(line, (e as Error).message) });
        continue;
      }
      const parsed = this.schema.safeParse(value);
      if (parsed.success) out.records.push(parsed.data);
      else out.skipped.push({ file: this.file, line: this.lineNo, problem: describeIssues(parsed.error) });
    }
  }
}

/**
 * Tells a record cut short (what a killed writer leaves, ended with a newline by the next writer) from
 * a line that is garbage: JSON that breaks off at its very end is a truncated record.
 */
function describeJsonError(line: string, message: string): string {
  const at = /at position (\d+)/.exec(message);
  const truncated = /Unexpected end of JSON input|Unterminated string/.test(message) || (at !== null && Number(at[1]) >= line.length - 1);
  return truncated && line.trimStart().startsWith('{')
    ? `incomplete line: a record cut short, as a killed writer leaves it (${message})`
    : `not valid JSON (${message})`;
}

/** Reads a whole JSONL file once (complete lines only). */
export function readJsonl<T>(file: string, schema: z.ZodType<T>, root: string | null = null): { records: T[]; skipped: SkippedLine[] } {
  const { records, skipped } = new JsonlTail(file, schema, MAX_LINE_BYTES, root).read();
  return { records, skipped };
}
