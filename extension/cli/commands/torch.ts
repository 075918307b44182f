import { Command } from 'commander';
import { defaultVenvDir, findEnginePython, missingEnvironmentMessage, PINNED_TORCH } from '../../engine/torch/python-env';
import { DoctorReport, doctor, setupTorchEnv } from '../../engine/torch/setup-env';

function printReport(r: DoctorReport): void {
  const lines = [
    `python        ${r.python}`,
    `torch         ${r.torch ?? '-'}${r.cuda ? ` (CUDA ${String(r.cuda)})` : ''}`,
    `transformers  ${r.transformers ?? '-'}`,
    `peft          ${r.peft ?? '-'}`,
    `accelerate    ${r.accelerate ?? '-'}`,
    `safetensors   ${r.safetensors ?? '-'}`,
    `devices       ${(r.devices ?? []).join(', ') || '-'}`,
    `works         ${r.ok ? 'yes' : 'no'}`,
    ...r.problems.map((p) => `problem       ${p}`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

export function torchCommand(): Command {
  const cmd = new Command('torch').description('the PyTorch engine: set up its Python environment, check it');
  cmd.addCommand(
    new Command('setup')
      .description(`create a virtual environment with torch==${PINNED_TORCH}, transformers, peft, accelerate and safetensors (default: ${defaultVenvDir()})`)
      .option('--python <py>', 'the Python that creates the environment (3.10 or later)', 'python3')
      .option('--venv <dir>', 'where to create it')
      .option('--cuda', 'install the CUDA build of torch (PyPI\'s Linux default) for a GPU machine', false)
      .option('--torch-version <v>', 'torch release to pin', PINNED_TORCH)
      .option('--torch-index-url <url>', 'package index for torch alone (e.g. PyTorch\'s CPU-only wheels)')
      .option('--json', 'print the final check as one JSON object', false)
      .action(async (o) => {
        const report = await setupTorchEnv({
          python: o.python,
          venv: o.venv,
          cuda: o.cuda,
          torchVersion: o.torchVersion,
          torchIndexUrl: o.torchIndexUrl,
          log: (line) => process.stderr.write(`  ${line}\n`),
          stage: (k, n, title) => process.stderr.write(`absp torch setup [${k}/${n}] ${title}\n`),
        });
        if (o.json) process.stdout.write(JSON.stringify(report) + '\n');
        else printReport(report);
        if (!report.ok) throw new Error(`the environment at ${report.python} does not work: ${report.problems.join('; ')}`);
      })
      .exitOverride(),
  );
  cmd.addCommand(
    new Command('doctor')
      .description('check the engine\'s environment: its python, torch, transformers and peft versions, devices, and a forward/backward pass')
      .option('--python <py>', 'check this Python instead of the one the engine would use')
      .option('--json', 'print one JSON object', false)
      .action(async (o) => {
        const python = findEnginePython(o.python) ?? o.python;
        const report: DoctorReport = python ? await doctor(python) : { ok: false, python: null as unknown as string, problems: [missingEnvironmentMessage(o.python)] };
        if (o.json) process.stdout.write(JSON.stringify(report) + '\n');
        else printReport(report);
        if (!report.ok) throw new Error(`the torch engine's environment does not work: ${report.problems.join('; ')}. Run \`absp torch setup\` to create one (or pass --python with a Python that has torch, transformers and peft).`);
      })
      .exitOverride(),
  );
  return cmd;
}
