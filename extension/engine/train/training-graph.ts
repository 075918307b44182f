/**
 * A training graph: the decoder's forward pass with the token-logprob head, a loss, and the backward pass
 * for the trainable tensors — the LoRA inputs (base frozen as initializers) or every base weight —
 * all in one ONNX graph.
 */
import { gradients } from '../graph/autodiff';
import { Graph, Tensor } from '../graph/graph';
import { ModelConfig } from '../model/model-config';
import { Weights } from '../model/checkpoint';
import { FloatType, LoraLayout, buildDecoder } from '../model/decoder';
import { nllLoss, policyGradientLoss } from './losses';

export type Objective = 'nll' | 'pg';

export interface TrainingGraphSpec {
  config: ModelConfig;
  dtype: FloatType;
  objective: Objective;
  /** `lora`: gradients of the adapter inputs, base frozen. `full`: gradients of every weight. */
  trainable: 'lora' | 'full';
  frozenWeights?: Weights;
  lora: LoraLayout | null;
}

export interface TrainingGraph {
  graph: Graph;
  /** Graph input name → the output carrying its gradient. */
  gradientOutputs: Map<string, string>;
}

export const gradOutputName = (input: string): string => `grad.${input}`;

export function buildTrainingGraph(spec: TrainingGraphSpec): TrainingGraph {
  if (spec.trainable === 'lora' && (!spec.lora || !spec.frozenWeights)) throw new Error('LoRA training needs a LoRA layout and the frozen base weights');
  const model = buildDecoder({
    config: spec.config,
    dtype: spec.dtype,
    weights: spec.trainable === 'full' ? { kind: 'trainable' } : { kind: 'frozen', data: spec.frozenWeights! },
    lora: spec.lora,
    kvCache: false,
    head: 'token-logprobs',
  });
  const g = model.graph;
  const lp = model.tokenLogprobs!;
  const perToken = (name: string) => g.input(name, spec.dtype, ['batch', 'seq']);
  const scalar = (name: string) => g.input(name, spec.dtype, []);
  const weights = perToken('token_weights');
  let loss: Tensor;
  if (spec.objective === 'nll') {
    loss = nllLoss(g, lp, weights);
  } else {
    loss = policyGradientLoss(g, lp, {
      weights,
      advantages: perToken('advantages'),
      oldLogprobs: perToken('old_logprobs'),
      refLogprobs: perToken('ref_logprobs'),
      clipEps: scalar('clip_eps'),
      klK1: scalar('kl_k1'),
      klK3: scalar('kl_k3'),
    }).loss;
  }
  g.output('loss', loss);
  const trainable = spec.trainable === 'full' ? [...model.weightInputs.values()] : [...model.loraInputs.values()];
  const grads = gradients(g, loss, trainable);
  const gradientOutputs = new Map<string, string>();
  for (const t of trainable) {
    const name = gradOutputName(t.name);
    g.output(name, grads.get(t)!);
    gradientOutputs.set(t.name, name);
  }
  return { graph: g, gradientOutputs };
}
