/**
 * Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header
 * mapping tensor names to {dtype, shape, data_offsets}, then the raw little-endian data. Every field is
 * validated before anything large is allocated, and tensors are read one at a time with positioned
 * reads, so a hostile or truncated file costs an error message, not memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../util/atomic';
import { openRegular, UnsafeFileError } from '../../util/safe-fs';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32';

const DTYPE_BYTES: Record<SafetensorsDType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4 };
/** Larger headers are refused (the format's own reference implementation caps them at 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export class SafetensorsError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
  }
}

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export class SafetensorsFile {
  private constructor(
    readonly file: string,
    private readonly fd: number,
    readonly entries: ReadonlyMap<string, TensorEntry>,
    readonly metadata: Record<string, string>,
  ) {}

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      // Not through a link, and a FIFO in the file's place is an error, not a read that never returns.
      fd = openRegular(file, 'read');
    } catch (e) {
      throw new SafetensorsError(file, `cannot open: ${e instanceof UnsafeFileError ? `it ${e.problem}` : (e as Error).message}`);
    }
    try {
      const { entries, metadata } = readHeader(file, fd);
      return new SafetensorsFile(file, fd, entries, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The tensor converted to float32 (F16 and BF16 are widened exactly). */
  readFloat32(name: string): Float32Array {
    const e = this.entry(name);
    const raw = this.readRaw(e);
    switch (e.dtype) {
      case 'F32':
        return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4).slice();
      case 'F64':
        return Float32Array.from(new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8));
      case 'F16':
        return f16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2));
      case 'BF16':
        return bf16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2));
      default:
        throw new SafetensorsError(this.file, `tensor ${name} has dtype ${e.dtype}, not a floating-point type`);
    }
  }

  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(this.file, `has no tensor named ${name}`);
    return e;
  }

  private readRaw(e: TensorEntry): Uint8Array {
    // A fresh, aligned buffer so typed-array views over it are legal.
    const buf = new Uint8Array(new ArrayBuffer(e.end - e.begin));
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(this.fd, buf, done, buf.length - done, e.begin + done);
      if (n === 0) throw new SafetensorsError(this.file, `ended early while reading tensor ${e.name}`);
      done += n;
    }
    return buf;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

function readHeader(file: string, fd: number): { entries: Map<string, TensorEntry>; metadata: Record<string, string> } {
  const size = fs.fstatSync(fd).size;
  if (size < 8) throw new SafetensorsError(file, `is ${size} bytes long, too short to hold a safetensors header`);
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(file, `declares a ${headerLen}-byte header, more than the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(headerLen);
  if (8 + n > size) throw new SafetensorsError(file, `header is truncated: it declares ${n} bytes but the file has ${size - 8} after the length`);
  const headerBuf = Buffer.alloc(n);
  fs.readSync(fd, headerBuf, 0, n, 8);
  let header: unknown;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(file, 'header is not a JSON object');
  }
  const dataStart = 8 + n;
  const dataLen = size - dataStart;
  const entries = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (value ?? {}) as Record<string, string>;
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof v !== 'object' || v === null) throw new SafetensorsError(file, `entry ${name} is not an object`);
    if (typeof v.dtype !== 'string' || !(v.dtype in DTYPE_BYTES)) {
      throw new SafetensorsError(file, `tensor ${name} has unsupported dtype ${JSON.stringify(v.dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    const dtype = v.dtype as SafetensorsDType;
    if (!Array.isArray(v.shape) || !v.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(file, `tensor ${name} has an invalid shape ${JSON.stringify(v.shape)}`);
    }
    const offsets = v.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
      throw new SafetensorsError(file, `tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const shape = v.shape as number[];
    const [b, e] = offsets as [number, number];
    const expected = shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[dtype];
    if (e - b !== expected) {
      throw new SafetensorsError(file, `tensor ${name} of shape [${shape.join(', ')}] ${dtype} needs ${expected} bytes but its offsets span ${e - b}`);
    }
    if (e > dataLen) {
      throw new SafetensorsError(file, `tensor ${name} runs past the end of the file (ends at data byte ${e}, data is ${dataLen} bytes)`);
    }
    entries.set(name, { name, dtype, shape, begin: dataStart + b, end: dataStart + e });
  }
  const sorted = [...entries.values()].sort((x, y) => x.begin - y.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end) {
      throw new SafetensorsError(file, `tensors ${sorted[i - 1].name} and ${sorted[i].name} overlap`);
    }
  }
  return { entries, metadata };
}

export function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24;
    else if (exp === 31) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

export function bf16ToF32(src: Uint16Array): Float32Array {
  const bits = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return new Float32Array(bits.buffer);
}

/** Rounds float32 to bfloat16 (round to nearest even), as torch does. */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i];
    if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Rounds float32 to IEEE half precision (round to nearest even). */
export function f32ToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < src.length; i++) {
    f[0] = src[i];
    const x = u[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    let e = exp - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && half & 1)) half++;
      out[i] = sign | half;
      continue;
    }
    let half = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
    e = half >>> 10;
    out[i] = sign | half;
  }
  return out;
}

export interface TensorToWrite {
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array;
}

/** Serialises tensors (sorted by name, as the reference writer does) into one buffer. */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const bytes = t.data.byteLength;
    const expected = t.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[t.dtype];
    if (bytes !== expected) throw new Error(`tensor ${name}: ${bytes} bytes of data for shape [${t.shape.join(', ')}] ${t.dtype}`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const d = tensors[name].data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}

export function writeSafetensors(file: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
