/** A guard model (WildGuard's format) run by the built-in engine, greedy-decoded and parsed. */
import { openModel } from '../../engine/runtime/open-model';
import { LanguageModel } from '../../engine/runtime/language-model';
import { TextTokenizer } from '../../engine/model/tokenizer';
import { Verdict } from '../verdict';
import { Judge, JudgeItem, verdictFromLabels } from './judge';
import { parseWildguard, wildguardPrompt } from './wildguard';

export class GuardModelJudge implements Judge {
  readonly name: string;

  private constructor(
    private readonly model: LanguageModel,
    private readonly tokenizer: TextTokenizer,
    private readonly maxNewTokens: number,
    dir: string,
  ) {
    this.name = `guard:${dir}`;
  }

  static open(modelDir: string, maxNewTokens: number, threads?: number): GuardModelJudge {
    const opened = openModel(modelDir, { threads });
    return new GuardModelJudge(opened.model, opened.tokenizer, maxNewTokens, opened.dir);
  }

  /** The raw classifier outputs, for inspection and tests. */
  async classify(pairs: readonly { prompt: string; response: string }[]): Promise<string[]> {
    const prompts = pairs.map((p) => this.tokenizer.encode(wildguardPrompt(p.prompt, p.response), true));
    const out: string[] = [];
    const batch = 16;
    for (let i = 0; i < prompts.length; i += batch) {
      const gens = await this.model.generate(
        prompts.slice(i, i + batch).map((prompt) => ({ prompt, adapter: -1 })),
        [],
        { maxNewTokens: this.maxNewTokens, temperature: 0, topP: 1, stopTokens: this.tokenizer.stopTokenIds(this.model.config.eosTokenIds) },
      );
      out.push(...gens.map((g) => this.tokenizer.decode(g.tokens, true)));
    }
    return out;
  }

  async judge(items: readonly JudgeItem[]): Promise<Verdict[]> {
    const outputs = await this.classify(items.map((i) => ({ prompt: i.prompt, response: i.response })));
    return items.map((item, k) => verdictFromLabels(item, parseWildguard(outputs[k])));
  }

  async close(): Promise<void> {
    await this.model.dispose();
  }
}
