import { Command } from 'commander';
import { openAdapters, openModel } from '../../engine/runtime/open-model';
import { checkIfBuiltin } from '../../sandbox/builtin';
import { floatOption, intOption } from '../options';
import { addEngineOptions, openTorchEngine } from '../engine-options';

export function generateCommand(): Command {
  return addEngineOptions(new Command('generate'))
    .description('generate text from a prompt with a Qwen2 or Llama model directory and an optional LoRA adapter')
    .requiredOption('--model <dir>', 'Hugging Face model directory (or builtin:sandbox)')
    .option('--adapter <dir>', 'PEFT LoRA adapter directory')
    .requiredOption('--prompt <text>', 'the prompt')
    .option('--chat', 'wrap the prompt as a user message with the chat template', false)
    .option('--max-new-tokens <n>', 'tokens to generate', intOption('--max-new-tokens', 1), 64)
    .option('--temperature <t>', 'sampling temperature; 0 is greedy', floatOption('--temperature', 0), 0)
    .option('--top-p <p>', 'nucleus sampling mass', floatOption('--top-p', 0, 1), 1)
    .option('--seed <s>', 'random seed', intOption('--seed', 0), 0)
    .option('--json', 'print one JSON object', false)
    .action(async (o) => {
      checkIfBuiltin(o.model);
      const print = (prompt: number[], gen: { tokens: number[]; logprobs: number[]; finish: string }, completion: string) => {
        if (o.json) process.stdout.write(JSON.stringify({ prompt_ids: prompt, ids: gen.tokens, text: completion, logprobs: gen.logprobs, finish: gen.finish }) + '\n');
        else process.stdout.write(completion + '\n');
      };
      if (o.engine === 'torch') {
        const engine = openTorchEngine(o.model, o);
        try {
          if (o.adapter) await engine.loadPolicy('adapter', o.adapter, 'lora');
          // As on the built-in engine: with --chat a plain-text user message, without the user's own markup.
          const prompt = o.chat ? engine.encodeChat([{ role: 'user', content: o.prompt }], true) : engine.encodeMarkup(o.prompt);
          if (prompt.length === 0) throw new Error('the prompt encodes to no tokens');
          const [gen] = await engine.generate([{ prompt, policy: o.adapter ? 'adapter' : null, seed: o.seed }], {
            maxNewTokens: o.maxNewTokens,
            temperature: o.temperature,
            topP: o.topP,
            stopTokens: engine.stopTokens(),
          });
          print(prompt, gen, engine.decode(gen.tokens));
        } finally {
          await engine.close();
        }
        return;
      }
      const { model, tokenizer } = openModel(o.model);
      const adapters = o.adapter ? openAdapters([o.adapter], model) : [];
      // With --chat the prompt is a user message (plain text); without, it is the user's own markup.
      const prompt = o.chat ? tokenizer.encodeChat([{ role: 'user', content: o.prompt }], true) : tokenizer.encodeMarkup(o.prompt);
      if (prompt.length === 0) throw new Error('the prompt encodes to no tokens');
      const [gen] = await model.generate([{ prompt, adapter: adapters.length ? 0 : -1, seed: o.seed }], adapters, {
        maxNewTokens: o.maxNewTokens,
        temperature: o.temperature,
        topP: o.topP,
        stopTokens: tokenizer.stopTokenIds(model.config.eosTokenIds),
        seed: o.seed,
      });
      print(prompt, gen, tokenizer.decode(gen.tokens, true));
      await model.dispose();
    });
}
