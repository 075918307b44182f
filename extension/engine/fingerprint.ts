/**
 * A policy's fingerprint: a hash of its weights, computed the same way by both engines
 * (extension/torch-engine/absp_torch/adapters.py): SHA-256 over the tensors in key order, each as
 * its key, a NUL, its shape joined by commas, a NUL, and its float32 little-endian bytes; the first
 * 16 hex digits. Keys are the names the weights have on disk (PEFT's adapter keys, or a model's
 * weight names), so equal weights give equal fingerprints in either engine and from the saved file.
 */
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import { moduleShape, ModelConfig, LoraTarget } from './model/model-config';
import type { Weights } from './model/checkpoint';
import { LoraAdapter, peftKey } from './lora/adapter';

const LITTLE_ENDIAN = os.endianness() === 'LE';

export interface NamedTensor {
  key: string;
  shape: readonly number[];
  data: Float32Array;
}

function littleEndianBytes(data: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out = Buffer.allocUnsafe(data.length * 4);
  for (let i = 0; i < data.length; i++) out.writeFloatLE(data[i], i * 4);
  return out;
}

export function weightsFingerprint(tensors: readonly NamedTensor[]): string {
  const h = createHash('sha256');
  for (const t of [...tensors].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    h.update(Buffer.from(`${t.key}\0${t.shape.join(',')}\0`, 'utf8'));
    h.update(littleEndianBytes(t.data));
  }
  return h.digest('hex').slice(0, 16);
}

export function adapterFingerprint(adapter: LoraAdapter, config: ModelConfig): string {
  const tensors: NamedTensor[] = [];
  for (const [key, m] of adapter.modules) {
    const [layerText, module] = key.split('.') as [string, LoraTarget];
    const layer = Number(layerText);
    const { in: inp, out } = moduleShape(config, module);
    tensors.push({ key: peftKey(layer, module, 'A'), shape: [m.rank, inp], data: m.A });
    tensors.push({ key: peftKey(layer, module, 'B'), shape: [out, m.rank], data: m.B });
  }
  return weightsFingerprint(tensors);
}

export function modelFingerprint(weights: Weights): string {
  return weightsFingerprint([...weights].map(([key, t]) => ({ key, shape: t.shape, data: t.data })));
}
