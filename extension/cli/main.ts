/** The `absp` command line: each subcommand lives in ./commands. */
import { Command, CommanderError } from 'commander';
import { generateCommand } from './commands/generate';
import { scoreCommand } from './commands/score';
import { sftCommand } from './commands/sft';
import { runCommand } from './commands/run';
import { evalCommand } from './commands/eval';
import { crossplayCommand } from './commands/crossplay';
import { benchCommand } from './commands/bench';
import { sandboxCommand } from './commands/sandbox';
import { torchCommand } from './commands/torch';
import { dataCommand } from './commands/data';
import { modelsCommand } from './commands/models';

export function program(): Command {
  const p = new Command('absp')
    .description('Anchored Bipolicy Self-Play: self-play red teaming with attacker and defender LoRA adapters on a frozen base')
    .showHelpAfterError()
    .exitOverride();
  for (const sub of [generateCommand(), scoreCommand(), sftCommand(), runCommand(), crossplayCommand(), evalCommand(), sandboxCommand(), benchCommand(), torchCommand(), dataCommand(), modelsCommand()]) p.addCommand(sub.exitOverride());
  return p;
}

/** Runs the command line; resolves to the exit code. Errors print one line, no stack trace. */
export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    process.stderr.write(`absp: ${(e as Error).message}\n`);
    if (process.env.ABSP_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}
