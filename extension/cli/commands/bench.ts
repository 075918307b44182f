import * as os from 'node:os';
import { Command } from 'commander';
import { formatBench, runBench } from '../../bench/bench';
import { OrtPhaseSpec, runOrtPhase } from '../../bench/ort-bench';
import { intOption, listOption } from '../options';

export function benchCommand(): Command {
  return new Command('bench')
    .description('benchmark the ONNX Runtime engine against PyTorch on the CPU (same shapes and threads), as ratios')
    .option('--shapes <list>', 'random-weight model shapes: 10M, 100M (tiny for a smoke test); none with --model unless given', listOption)
    .option('--model <dir...>', 'real model directories to measure with their own weights (e.g. the one absp models get smollm2 prints)')
    .option('--threads <n>', 'threads for both engines (default: every core)', intOption('--threads', 1))
    .option('--repeats <n>', 'timed repeats per measure (the median is reported)', intOption('--repeats', 1), 3)
    .option('--warmup <n>', 'untimed warm-up runs', intOption('--warmup', 0), 1)
    .option('--rank <r>', 'LoRA rank of the training and bipolicy rows', intOption('--rank', 1), 8)
    .option('--no-torch', 'skip the PyTorch side')
    .option('--json', 'print one JSON object', false)
    .addOption(new Command().createOption('--ort-phase <spec>', 'internal: run one ONNX Runtime phase and print JSON').hideHelp())
    .action(async (o) => {
      if (o.ortPhase) {
        process.stdout.write(JSON.stringify(await runOrtPhase(JSON.parse(o.ortPhase) as OrtPhaseSpec)) + '\n');
        return;
      }
      const result = await runBench({
        shapes: o.shapes ?? (o.model ? [] : ['10M', '100M']),
        models: o.model ?? [],
        threads: o.threads ?? os.availableParallelism(),
        repeats: o.repeats,
        warmup: o.warmup,
        rank: o.rank,
        torch: o.torch !== false,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(o.json ? JSON.stringify(result, null, 2) + '\n' : formatBench(result) + '\n');
    });
}
