/** Real processes for liveness tests: a stand-in for a run's trainer, and a wait until one is listed. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { processStartToken } from '../../extension/rundir/liveness';

/** A stand-in for a run's trainer: node with `absp.js run` on its command line (the script in `dir`). */
export function standInTrainer(dir: string): ChildProcess {
  const entry = path.join(dir, 'bin', 'absp.js');
  fs.mkdirSync(path.dirname(entry), { recursive: true });
  fs.writeFileSync(entry, '');
  return spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', entry, 'run'], { stdio: 'ignore' });
}

/** Waits until `child` is in the process table with its own command line; returns its pid. */
export async function started(child: ChildProcess): Promise<number> {
  for (let i = 0; i < 200 && processStartToken(child.pid!) === null; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 100)); // let exec replace the command line
  return child.pid!;
}
