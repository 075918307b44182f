/**
 * The one strict loader of JSONL input files (seeds, evaluation data, helpful answers, fine-tuning
 * data): every line must be a JSON object its parser accepts, and the first problem stops the load
 * with `file:line: problem`. (Run-directory logs are read leniently instead, by rundir/jsonl.ts.)
 */
import { readTextFile, UnsafeFileError } from './safe-fs';

/** Input files are read whole: this bounds their size, and each line's (in bytes of UTF-8). */
export const MAX_INPUT_FILE_BYTES = 256 * 1024 * 1024;
export const MAX_INPUT_LINE_BYTES = 8 * 1024 * 1024;

/** Makes the error thrown for a problem; `line` is null for the file as a whole. */
export type JsonlErrorFactory = (file: string, line: number | null, problem: string) => Error;

export function jsonlMessage(file: string, line: number | null, problem: string): string {
  return line === null ? `${file}: ${problem}` : `${file}:${line}: ${problem}`;
}

const plainError: JsonlErrorFactory = (file, line, problem) => new Error(jsonlMessage(file, line, problem));

export interface JsonlLoad<T> {
  /** What the file holds, for the message when it cannot be read ("the seeds file"). */
  what: string;
  /** What it says when the file has no lines ("has no seeds"). */
  none: string;
  /** Checks one line's value; `fail` throws the loader's error for that line. */
  parse: (value: unknown, line: number, fail: (problem: string) => never) => T;
  error?: JsonlErrorFactory;
}

export function loadJsonl<T>(file: string, o: JsonlLoad<T>): T[] {
  const error = o.error ?? plainError;
  let text: string;
  try {
    text = readTextFile(file, MAX_INPUT_FILE_BYTES);
  } catch (e) {
    if (e instanceof UnsafeFileError) throw error(file, null, `cannot read ${o.what}: it ${e.problem}`);
    throw error(file, null, `cannot read ${o.what} (${(e as Error).message})`);
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw error(file, null, o.none);
  return lines.map((line, i) => {
    const n = i + 1;
    const fail = (problem: string): never => {
      throw error(file, n, problem);
    };
    if (line.length > MAX_INPUT_LINE_BYTES / 4 && Buffer.byteLength(line) > MAX_INPUT_LINE_BYTES) fail(`line longer than ${MAX_INPUT_LINE_BYTES} bytes`);
    if (line.trim() === '') fail('empty line (every line must be a JSON object)');
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      fail(`invalid JSON (${(e as Error).message})`);
    }
    return o.parse(value, n, fail);
  });
}
