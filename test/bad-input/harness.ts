/**
 * The bad-input suite's harness. Each input family (run directory, run config, adapter, model
 * directory, seeds and data, endpoint answers, webview messages, processes, editor settings) lists
 * its hostile or malformed inputs as cases in `<family>.cases.ts`; `<family>.test.ts` runs them.
 *
 * A case builds its input in a fresh temporary folder, does what a user would do with it, and says
 * what must happen: one clear error (a message naming the file and the field or problem), or a
 * handling it checks itself (a damaged line skipped and reported, a stale pid left alone). Every case
 * runs on a worker thread of its family, with a deadline and a heap limit: a case that passes its
 * deadline is ended and counted as a hang, one that dies (out of memory, say) as a crash, and the
 * next case gets a fresh worker. Files a case names as already written are fingerprinted before and
 * after: any change fails it.
 *
 * Outcomes are also written to test-artifacts/bad-input/<family>.json when BAD_INPUT_RESULTS is set;
 * scripts/bad-input-report.ts runs the suite that way and writes the counts into README.
 */
import { strict as assert } from 'node:assert';
import * as crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export type Expectation =
  /** One error whose message matches (it should name the file and the field or problem). */
  | { error: RegExp }
  /** No error; `check` asserts what must hold of the result (throws otherwise). */
  | { handled: (result: unknown, dir: string) => void | Promise<void> };

export interface BadInputCase {
  name: string;
  /** Builds the input in `dir` (a fresh temporary folder); may return state for `act`. */
  setup?: (dir: string) => unknown | Promise<unknown>;
  /** What a user does with the input: open it, load it, resume it. */
  act: (dir: string, state: unknown) => unknown | Promise<unknown>;
  expect: Expectation;
  /** Files (relative to dir, or absolute) written before `act` that must be unchanged after it. */
  unchanged?: (dir: string, state: unknown) => string[];
  /** Wall-clock bound of `act` (default 5 s): past it the case is a hang. */
  deadlineMs?: number;
  /** Heap the act may add, in MB (default 256). */
  heapMb?: number;
}

export type OutcomeKind = 'clear-error' | 'handled' | 'unclear-error' | 'not-refused' | 'changed' | 'crash' | 'hang' | 'too-much-memory';

export interface CaseOutcome {
  family: string;
  name: string;
  kind: OutcomeKind;
  ms: number;
  heapMb: number;
  detail: string;
}

const DEFAULT_DEADLINE_MS = 5_000;
const DEFAULT_HEAP_MB = 256;
/** The worker's heap limit: a case that allocates past it dies (a crash), never the test process. */
const WORKER_HEAP_MB = 768;

// ---------------------------------------------------------------------------------------------------
// In the worker: run one case on request.

function fileDigest(p: string): string {
  try {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) return `link:${fs.readlinkSync(p)}`;
    if (!st.isFile()) return `kind:${st.mode & fs.constants.S_IFMT}`;
    return `${st.size}:${st.mtimeMs}:${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
  } catch {
    return 'absent';
  }
}

async function runCase(c: BadInputCase): Promise<Omit<CaseOutcome, 'family' | 'name'>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'absp-bad-'));
  try {
    const state = c.setup ? await c.setup(dir) : undefined;
    const watched = (c.unchanged?.(dir, state) ?? []).map((p) => (path.isAbsolute(p) ? p : path.join(dir, p)));
    const before = watched.map(fileDigest);
    const heap0 = process.memoryUsage();
    const t0 = performance.now();
    let result: unknown;
    let error: unknown = null;
    let threw = false;
    try {
      result = await c.act(dir, state);
    } catch (e) {
      threw = true;
      error = e;
    }
    const ms = performance.now() - t0;
    const heap1 = process.memoryUsage();
    const heapMb = Math.max(0, (heap1.heapUsed - heap0.heapUsed + (heap1.arrayBuffers - heap0.arrayBuffers)) / 2 ** 20);
    const after = watched.map(fileDigest);
    const changed = watched.filter((_, i) => before[i] !== after[i]);
    if (changed.length) return { kind: 'changed', ms, heapMb, detail: `changed: ${changed.join(', ')}` };
    if (heapMb > (c.heapMb ?? DEFAULT_HEAP_MB)) return { kind: 'too-much-memory', ms, heapMb, detail: `${heapMb.toFixed(0)} MB` };
    if (ms > (c.deadlineMs ?? DEFAULT_DEADLINE_MS)) return { kind: 'hang', ms, heapMb, detail: `took ${ms.toFixed(0)} ms` };
    if ('error' in c.expect) {
      if (!threw) return { kind: 'not-refused', ms, heapMb, detail: `no error; returned ${String(JSON.stringify(result))?.slice(0, 200)}` };
      const message = (error as Error)?.message ?? String(error);
      if (!c.expect.error.test(message)) return { kind: 'unclear-error', ms, heapMb, detail: `${(error as Error)?.name}: ${message.slice(0, 500)}` };
      return { kind: 'clear-error', ms, heapMb, detail: message.slice(0, 300) };
    }
    if (threw) return { kind: 'unclear-error', ms, heapMb, detail: `threw ${(error as Error)?.name}: ${((error as Error)?.message ?? String(error)).slice(0, 500)}` };
    try {
      await c.expect.handled(result, dir);
    } catch (e) {
      return { kind: 'unclear-error', ms, heapMb, detail: `handled wrongly: ${(e as Error).message.slice(0, 500)}` };
    }
    return { kind: 'handled', ms, heapMb, detail: '' };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (!isMainThread && (workerData as { badInputCases?: string } | null)?.badInputCases) {
  const file = (workerData as { badInputCases: string }).badInputCases;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cases = (require(file) as { cases: BadInputCase[] }).cases;
  parentPort!.on('message', (name: string) => {
    const c = cases.find((x) => x.name === name);
    if (!c) {
      parentPort!.postMessage({ kind: 'crash', ms: 0, heapMb: 0, detail: `no case named ${name}` });
      return;
    }
    runCase(c).then(
      (o) => parentPort!.postMessage(o),
      (e) => parentPort!.postMessage({ kind: 'crash', ms: 0, heapMb: 0, detail: `setup failed: ${(e as Error)?.stack ?? e}` }),
    );
  });
}

// ---------------------------------------------------------------------------------------------------
// In mocha: one test per case, dispatched to the family's worker.

class FamilyWorker {
  private worker: Worker | null = null;

  constructor(private readonly casesFile: string) {}

  private start(): Worker {
    if (!this.worker) {
      this.worker = new Worker(__filename, {
        workerData: { badInputCases: this.casesFile },
        execArgv: ['--require', 'tsx/cjs'],
        resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
        stdout: true,
        stderr: true,
      });
      this.worker.unref();
    }
    return this.worker;
  }

  async run(c: BadInputCase): Promise<Omit<CaseOutcome, 'family' | 'name'>> {
    const w = this.start();
    const deadline = (c.deadlineMs ?? DEFAULT_DEADLINE_MS) * 3 + 30_000; // setup, worker start, and a loaded machine
    return new Promise((resolve) => {
      const done = (o: Omit<CaseOutcome, 'family' | 'name'>, restart: boolean) => {
        clearTimeout(timer);
        w.off('message', onMessage);
        w.off('error', onError);
        w.off('exit', onExit);
        if (restart) {
          this.worker = null;
          void w.terminate();
        }
        resolve(o);
      };
      const onMessage = (o: Omit<CaseOutcome, 'family' | 'name'>) => done(o, false);
      const onError = (e: Error) => done({ kind: 'crash', ms: 0, heapMb: 0, detail: `the worker died: ${e.message}` }, true);
      const onExit = (code: number) => done({ kind: 'crash', ms: 0, heapMb: 0, detail: `the worker exited (${code})` }, true);
      const timer = setTimeout(() => done({ kind: 'hang', ms: deadline, heapMb: 0, detail: `no answer within ${deadline} ms; the worker was ended` }, true), deadline);
      w.on('message', onMessage);
      w.once('error', onError);
      w.once('exit', onExit);
      w.postMessage(c.name);
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}

/** Puts a FIFO (named pipe) where `file` is, replacing the file if there is one; returns `file`. */
export function makeFifo(file: string): string {
  fs.rmSync(file, { force: true });
  execFileSync('mkfifo', [file]);
  return file;
}

export const RESULTS_DIR = path.resolve(__dirname, '..', '..', 'test-artifacts', 'bad-input');

/** Defines the mocha tests of a family: every case must end in a clear error or its expected handling. */
export function defineFamily(family: string, casesFile: string): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cases = (require(casesFile) as { cases: BadInputCase[] }).cases;
  describe(`bad input: ${family}`, function () {
    this.timeout(180_000);
    const worker = new FamilyWorker(casesFile);
    const outcomes: CaseOutcome[] = [];
    after(async () => {
      await worker.close();
      if (process.env.BAD_INPUT_RESULTS) {
        fs.mkdirSync(RESULTS_DIR, { recursive: true });
        fs.writeFileSync(path.join(RESULTS_DIR, `${path.basename(casesFile).replace(/\.cases\.ts$/, '')}.json`), JSON.stringify({ family, outcomes }, null, 2));
      }
    });
    for (const c of cases) {
      it(c.name, async function () {
        // Past the worker's own bound (setup, the case's deadline, a loaded machine) so that it reports first.
        this.timeout(Math.max(180_000, (c.deadlineMs ?? DEFAULT_DEADLINE_MS) * 3 + 60_000));
        const o = await worker.run(c);
        outcomes.push({ family, name: c.name, ...o });
        const wanted = 'error' in c.expect ? 'clear-error' : 'handled';
        assert.equal(o.kind, wanted, `${c.name}: ${o.kind} — ${o.detail}`);
      });
    }
  });
}
