/**
 * A guard model (WildGuard's format), greedy-decoded and parsed: on the built-in engine, or — when
 * the run's engine is torch — on the PyTorch engine (transformers), so a GPU run judges on the GPU.
 * Either way the prompt is rendered and tokenized here and the same three labels are parsed.
 */
import { openModel } from '../../engine/runtime/open-model';
import { LanguageModel } from '../../engine/runtime/language-model';
import { TextTokenizer } from '../../engine/model/tokenizer';
import { TorchEngine, type TorchEngineOptions } from '../../engine/torch/torch-engine';
import { Verdict } from '../verdict';
import { Judge, JudgeItem, verdictFromLabels } from './judge';
import { parseWildguard, wildguardPrompt } from './wildguard';

/** Greedy continuations of token-id prompts, and what releases the model. */
interface GuardRunner {
  generate(prompts: number[][], maxNewTokens: number, stopTokens: number[]): Promise<number[][]>;
  close(): Promise<void>;
}

export class GuardModelJudge implements Judge {
  readonly name: string;

  private constructor(
    private readonly runner: GuardRunner,
    private readonly tokenizer: TextTokenizer,
    private readonly stopTokens: number[],
    private readonly maxNewTokens: number,
    dir: string,
  ) {
    this.name = `guard:${dir}`;
  }

  static open(modelDir: string, maxNewTokens: number, threads?: number): GuardModelJudge {
    const opened = openModel(modelDir, { threads });
    const model: LanguageModel = opened.model;
    const runner: GuardRunner = {
      generate: async (prompts, max, stop) =>
        (await model.generate(prompts.map((prompt) => ({ prompt, adapter: -1 })), [], { maxNewTokens: max, temperature: 0, topP: 1, stopTokens: stop })).map((g) => g.tokens),
      close: () => model.dispose(),
    };
    return new GuardModelJudge(runner, opened.tokenizer, opened.tokenizer.stopTokenIds(model.config.eosTokenIds), maxNewTokens, opened.dir);
  }

  /** The guard on the PyTorch engine (its own engine process, the frozen base, no adapters). */
  static openTorch(modelDir: string, maxNewTokens: number, options: TorchEngineOptions): GuardModelJudge {
    const engine = TorchEngine.open(modelDir, options);
    const runner: GuardRunner = {
      generate: async (prompts, max, stop) =>
        (await engine.generate(prompts.map((prompt) => ({ prompt, policy: null, seed: 0 })), { maxNewTokens: max, temperature: 0, topP: 1, stopTokens: stop })).map((g) => g.tokens),
      close: () => engine.close(),
    };
    return new GuardModelJudge(runner, TextTokenizer.load(engine.info.model), engine.stopTokens(), maxNewTokens, engine.info.model);
  }

  /** The raw classifier outputs, for inspection and tests. */
  async classify(pairs: readonly { prompt: string; response: string }[]): Promise<string[]> {
    // The instruction's markers are special tokens; the judged prompt and response are plain text, so
    // neither can close the classifier's turn or write its answer.
    const prompts = pairs.map((p) => this.tokenizer.encodeAround([p.prompt, p.response], ([prompt, response]) => wildguardPrompt(prompt, response), true));
    const out: string[] = [];
    const batch = 16;
    for (let i = 0; i < prompts.length; i += batch) {
      const gens = await this.runner.generate(prompts.slice(i, i + batch), this.maxNewTokens, this.stopTokens);
      out.push(...gens.map((g) => this.tokenizer.decode(g, true)));
    }
    return out;
  }

  async judge(items: readonly JudgeItem[]): Promise<Verdict[]> {
    const outputs = await this.classify(items.map((i) => ({ prompt: i.prompt, response: i.response })));
    return items.map((item, k) => verdictFromLabels(item, parseWildguard(outputs[k])));
  }

  async close(): Promise<void> {
    await this.runner.close();
  }
}
