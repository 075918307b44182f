/**
 * Packs several adapters into the stacked graph inputs of one LoRA layout (see qwen2.ts): for each
 * targeted module, A of every slot stacked by rows into [slots·rank, in] and B by columns into
 * [out, slots·rank], each slot zero-padded to the layout's rank. Zero rows and columns contribute
 * nothing and receive zero gradient, so padding never changes results.
 */
import { DType, HostTensor } from '../graph/dtype';
import { LORA_TARGETS, LoraTarget, ModelConfig, moduleShape } from '../model/model-config';
import { LoraLayout, loraInputName } from '../model/decoder';
import { LoraAdapter, moduleKey } from './adapter';

export function layoutFor(adapters: readonly LoraAdapter[]): LoraLayout | null {
  if (adapters.length === 0) return null;
  const targets = LORA_TARGETS.filter((m) => adapters.some((a) => a.settings.targets.includes(m)));
  const rank = Math.max(...adapters.map((a) => a.maxRank));
  return { slots: adapters.length, rank, targets };
}

export function layoutKey(layout: LoraLayout | null): string {
  return layout ? `${layout.slots}x${layout.rank}:${layout.targets.join(',')}` : 'base';
}

/** The scale applied to a slot as a whole; modules with their own scale fold the ratio into B. */
function slotScale(adapter: LoraAdapter): number {
  const s = adapter.settings;
  return s.useRslora ? s.alpha / Math.sqrt(s.rank) : s.alpha / s.rank;
}

export function packAdapters(
  adapters: readonly LoraAdapter[],
  layout: LoraLayout,
  config: ModelConfig,
  dtype: 'float32' | 'float64',
): Record<string, HostTensor> {
  const width = layout.slots * layout.rank;
  const make = (n: number) => (dtype === 'float64' ? new Float64Array(n) : new Float32Array(n));
  const feeds: Record<string, HostTensor> = {};
  const scales = make(layout.slots);
  adapters.forEach((a, k) => (scales[k] = slotScale(a)));
  feeds.lora_scale = { dtype: dtype as DType, dims: [layout.slots], data: scales };
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const module of layout.targets) {
      const { in: inp, out } = moduleShape(config, module);
      const A = make(width * inp);
      const B = make(out * width);
      adapters.forEach((adapter, k) => {
        const m = adapter.get(layer, module);
        if (!m) return;
        const ratio = m.scale / scales[k];
        const col0 = k * layout.rank;
        A.set(m.A, col0 * inp);
        for (let o = 0; o < out; o++) {
          for (let j = 0; j < m.rank; j++) B[o * width + col0 + j] = m.B[o * m.rank + j] * ratio;
        }
      });
      feeds[loraInputName(layer, module, 'A')] = { dtype, dims: [width, inp], data: A };
      feeds[loraInputName(layer, module, 'B')] = { dtype, dims: [out, width], data: B };
    }
  }
  return feeds;
}

export interface AdapterGradient {
  /** Same keys and layouts as the adapter's modules. */
  modules: Map<string, { A: Float64Array; B: Float64Array }>;
}

/**
 * Splits the stacked gradients back into one gradient per adapter, undoing the folded scale ratio
 * (∂L/∂B = ratio · ∂L/∂B_packed) and dropping the padding.
 */
export function unpackGradients(
  grads: Record<string, HostTensor>,
  adapters: readonly LoraAdapter[],
  layout: LoraLayout,
  config: ModelConfig,
  gradName: (input: string) => string,
): AdapterGradient[] {
  const width = layout.slots * layout.rank;
  return adapters.map((adapter, k) => {
    const modules = new Map<string, { A: Float64Array; B: Float64Array }>();
    const scale = slotScale(adapter);
    for (const [key, m] of adapter.modules) {
      const [layerText, module] = key.split('.') as [string, LoraTarget];
      const layer = Number(layerText);
      const { in: inp, out } = moduleShape(config, module);
      const gA = grads[gradName(loraInputName(layer, module, 'A'))];
      const gB = grads[gradName(loraInputName(layer, module, 'B'))];
      if (!gA || !gB) throw new Error(`no gradient for ${loraInputName(layer, module, 'A')}`);
      const ratio = m.scale / scale;
      const col0 = k * layout.rank;
      const A = new Float64Array(m.rank * inp);
      for (let i = 0; i < A.length; i++) A[i] = gA.data[col0 * inp + i] as number;
      const B = new Float64Array(out * m.rank);
      for (let o = 0; o < out; o++) {
        for (let j = 0; j < m.rank; j++) B[o * m.rank + j] = (gB.data[o * width + col0 + j] as number) * ratio;
      }
      modules.set(moduleKey(layer, module), { A, B });
    }
    return { modules };
  });
}

/** An adapter's matrices as named optimiser parameters (views into the adapter, updated in place). */
export function adapterParams(adapter: LoraAdapter): Map<string, Float32Array> {
  const params = new Map<string, Float32Array>();
  for (const [key, m] of adapter.modules) {
    params.set(`${key}.A`, m.A);
    params.set(`${key}.B`, m.B);
  }
  return params;
}

/** The gradient of one adapter under the same names as `adapterParams`. */
export function adapterGradMap(grad: AdapterGradient): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const [key, m] of grad.modules) {
    out.set(`${key}.A`, m.A);
    out.set(`${key}.B`, m.B);
  }
  return out;
}
