import { Command } from 'commander';
import { openAdapters, openModel } from '../../engine/runtime/open-model';
import { checkIfBuiltin } from '../../sandbox/builtin';
import { idsOption } from '../options';
import { addEngineOptions, openTorchEngine } from '../engine-options';
import { TextTokenizer } from '../../engine/model/tokenizer';

export function scoreCommand(): Command {
  return addEngineOptions(new Command('score'))
    .description('per-token log-probabilities of a text or of token ids')
    .requiredOption('--model <dir>', 'Hugging Face model directory (or builtin:sandbox)')
    .option('--adapter <dir>', 'PEFT LoRA adapter directory')
    .option('--text <text>', 'text to score')
    .option('--ids <ids>', 'comma-separated token ids to score', idsOption)
    .option('--json', 'print {"ids":[...],"logprobs":[null,...]}', false)
    .action(async (o) => {
      checkIfBuiltin(o.model);
      if ((o.text === undefined) === (o.ids === undefined)) throw new Error('give exactly one of --text and --ids');
      const print = (ids: number[], logprobs: (number | null)[], tokenizer: () => TextTokenizer) => {
        if (o.json) process.stdout.write(JSON.stringify({ ids, logprobs }) + '\n');
        else ids.forEach((id, i) => process.stdout.write(`${i}\t${id}\t${JSON.stringify(tokenizer().tokenText(id) ?? '')}\t${logprobs[i] === null ? '' : (logprobs[i] as number).toFixed(6)}\n`));
      };
      if (o.engine === 'torch') {
        const engine = openTorchEngine(o.model, o);
        try {
          if (o.adapter) await engine.loadPolicy('adapter', o.adapter, 'lora');
          const ids: number[] = o.ids ?? engine.encode(o.text);
          if (ids.length === 0) throw new Error('nothing to score: the input has no tokens');
          const [logprobs] = await engine.logprobs([{ ids, policy: o.adapter ? 'adapter' : null }]);
          print(ids, logprobs, () => TextTokenizer.load(engine.info.model));
        } finally {
          await engine.close();
        }
        return;
      }
      const opened = openModel(o.model);
      const model = opened.model;
      const adapters = o.adapter ? openAdapters([o.adapter], model) : [];
      const ids: number[] = o.ids ?? opened.tokenizer.encodeMarkup(o.text);
      if (ids.length === 0) throw new Error('nothing to score: the input has no tokens');
      const [logprobs] = await model.score([{ ids, adapter: adapters.length ? 0 : -1 }], adapters);
      print(ids, logprobs, () => opened.tokenizer);
      await model.dispose();
    });
}
