/**
 * The pid in a run.json from someone else: Stop Run and resume must signal, or wait for, only the
 * run's own trainer — on this machine, started when recorded, running `absp run` (finding 2). Real
 * processes: a decoy program holding a stale pid, and a stand-in trainer whose command line is
 * `node … absp.js run`.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JobManager } from '../../extension/host/job-manager';
import { RunWriter, effectiveStatus, processStartToken, readRunInfo, runLayout } from '../../extension/rundir';
import type { BadInputCase } from './harness';
import { standInTrainer, started } from '../helpers/stand-in-trainer';

const NEW_RUN = { id: 'their-run', name: 'their-run', mode: 'bipolicy' as const, engine: 'ort', base_model: 'builtin:sandbox', rounds_planned: 2, roles: ['attacker', 'defender'], config: {} };

/** A program that is not a trainer, alive for the case. */
function decoy(): ChildProcess {
  return spawn('sleep', ['60'], { stdio: 'ignore' });
}


/** A run.json claiming `running` by `pid` on this host, with the given start token (or none). */
function runningRun(dir: string, pid: number, o: RunJsonFields = {}): string {
  const w = RunWriter.create(path.join(dir, 'runs'), NEW_RUN, { pid: 2 ** 22 + 99, host: 'x' });
  const file = runLayout(w.dir).runJson;
  const raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  raw.pid = pid;
  raw.status = 'running';
  if (o.host === null) delete raw.host;
  else raw.host = o.host ?? os.hostname();
  if (o.pidStart === null) delete raw.pid_start;
  else if (o.pidStart !== undefined) raw.pid_start = o.pidStart;
  fs.writeFileSync(file, JSON.stringify(raw));
  return w.dir;
}

const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;
const jobs = () => new JobManager(() => {
  throw new Error('no launches here');
});

interface Live {
  run: string;
  child: ChildProcess;
}

const cleanup = (s: unknown) => {
  const c = (s as Live).child;
  if (alive(c)) c.kill('SIGKILL');
};

async function withCleanup<T>(s: unknown, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    cleanup(s);
  }
}

type RunJsonFields = { host?: string | null; pidStart?: string | null };

/**
 * Stop Run pressed on a run.json that names a live `program` with `fields`: what Stop answered,
 * whether the program survived, and (when `expected` names one) the status the run shows.
 */
function stopCase(name: string, program: 'decoy' | 'trainer', fields: (pid: number) => RunJsonFields, expected: { stop: string; survived: boolean; status?: string }): BadInputCase {
  return {
    name,
    setup: async (dir) => {
      const child = program === 'decoy' ? decoy() : standInTrainer(dir);
      const pid = await started(child);
      return { run: runningRun(dir, pid, fields(pid)), child };
    },
    act: (_dir, s) =>
      withCleanup(s, async () => {
        const { run, child } = s as Live;
        const stop = jobs().stopRun(run);
        await new Promise((r) => setTimeout(r, 200));
        return { stop, survived: alive(child), ...(expected.status !== undefined ? { status: effectiveStatus(readRunInfo(run)) } : {}) };
      }),
    expect: { handled: (r) => assert.deepEqual(r, expected) },
  };
}

export const cases: BadInputCase[] = [
  {
    name: 'a stale pid now used by another program: Stop does not signal it, and it does not block resume',
    setup: async (dir) => {
      const child = decoy();
      const pid = await started(child);
      return { run: runningRun(dir, pid, { pidStart: 'linux:a-boot-long-ago:12345' }), child };
    },
    act: (_dir, s) =>
      withCleanup(s, async () => {
        const { run, child } = s as Live;
        const stop = jobs().stopRun(run);
        await new Promise((r) => setTimeout(r, 200));
        const survived = alive(child);
        const status = effectiveStatus(readRunInfo(run));
        RunWriter.resume(run, { pid: process.pid });
        return { stop, survived, status, attempt: readRunInfo(run).attempt };
      }),
    expect: { handled: (r) => assert.deepEqual(r, { stop: 'not-running', survived: true, status: 'interrupted', attempt: 2 }) },
  },
  stopCase("a pid whose process is not `absp run` (no start time recorded): not signalled, shown as interrupted", 'decoy', () => ({ pidStart: null }), {
    stop: 'not-running',
    survived: true,
    status: 'interrupted',
  }),
  stopCase('a pid with the start time of another program (a forged pid_start): the command line still decides', 'decoy', (pid) => ({ pidStart: processStartToken(pid) }), {
    stop: 'not-running',
    survived: true,
  }),
  stopCase('a run.json without host: nothing is signalled (its machine is unknown), the status is kept', 'trainer', (pid) => ({ host: null, pidStart: processStartToken(pid) }), {
    stop: 'elsewhere',
    survived: true,
    status: 'running',
  }),
  stopCase('a run.json from another machine: nothing is signalled here', 'trainer', (pid) => ({ host: 'gpu-box', pidStart: processStartToken(pid) }), {
    stop: 'elsewhere',
    survived: true,
  }),
  {
    name: "the run's own trainer (same host, start time, `absp.js run`): Stop signals it, and only it",
    setup: async (dir) => {
      const child = standInTrainer(dir);
      const bystander = decoy();
      const pid = await started(child);
      await started(bystander);
      return { run: runningRun(dir, pid, { pidStart: processStartToken(pid) }), child, bystander };
    },
    act: async (_dir, s) => {
      const { run, child, bystander } = s as Live & { bystander: ChildProcess };
      try {
        const exited = new Promise<string | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
        const blocked = (() => {
          try {
            RunWriter.resume(run, { pid: process.pid });
            return false;
          } catch (e) {
            return /still being written by process/.test((e as Error).message);
          }
        })();
        const stop = jobs().stopRun(run);
        const signal = await Promise.race([exited, new Promise((r) => setTimeout(() => r('no exit'), 3000))]);
        return { blocked, stop, signal, bystander: alive(bystander) };
      } finally {
        cleanup(s);
        if (alive(bystander)) bystander.kill('SIGKILL');
      }
    },
    expect: { handled: (r) => assert.deepEqual(r, { blocked: true, stop: 'signalled', signal: 'SIGTERM', bystander: true }) },
  },
];
