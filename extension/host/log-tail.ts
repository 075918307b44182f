/** Reads the lines appended to a text file since the last read (the child's log, while it runs). */
import * as fs from 'node:fs';

export class LogTail {
  private offset = 0;
  private partial = '';
  /** The last lines read, for error messages. */
  readonly recent: string[] = [];

  constructor(
    readonly file: string,
    private readonly keep = 40,
  ) {}

  /** New complete lines; `flush` also returns a last line without its newline (the process ended). */
  read(flush = false): string[] {
    let text = '';
    try {
      const fd = fs.openSync(this.file, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        if (size > this.offset) {
          const buf = Buffer.alloc(size - this.offset);
          const n = fs.readSync(fd, buf, 0, buf.length, this.offset);
          this.offset += n;
          text = buf.subarray(0, n).toString('utf8');
        }
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return [];
    }
    // A progress bar on a terminal rewrites its line with \r; keep what the line ended up saying.
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    if (flush && this.partial) {
      parts.push(this.partial);
      this.partial = '';
    }
    const lines = parts.map((l) => l.slice(l.lastIndexOf('\r') + 1));
    this.recent.push(...lines);
    if (this.recent.length > this.keep) this.recent.splice(0, this.recent.length - this.keep);
    return lines;
  }
}
