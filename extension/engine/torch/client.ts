/**
 * The engine process and its wire: one JSON request per line to its stdin, one response per line
 * from its stdout, matched by id (extension/torch-engine/absp_torch/server.py is the other side).
 * An `ok: false` response rejects with the engine's own message. When the process dies, every
 * pending and later request rejects at once with its exit code and the tail of its stderr — a dead
 * engine is an error, never a hung pipe.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';
import { EngineError } from '../policy-engine';

/** Bumped with extension/torch-engine/absp_torch/__init__.py PROTOCOL_VERSION. */
export const PROTOCOL_VERSION = 1;

export class TorchEngineError extends EngineError {
  constructor(
    message: string,
    /** The engine's error kind: request, checkpoint, out-of-memory, engine, internal, or exited. */
    readonly kind: string,
  ) {
    super(message);
    this.name = 'TorchEngineError';
  }
}

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
  op: string;
}

/** Strings the engine sends for non-finite floats, back to numbers. */
function reviveFloats(_key: string, value: unknown): unknown {
  if (value === 'NaN') return NaN;
  if (value === 'Infinity') return Infinity;
  if (value === '-Infinity') return -Infinity;
  return value;
}

function encodeFloats(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
  return value;
}

export interface EngineProcessOptions {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** For messages: what the process is. */
  label: string;
  /** Its working folder (python-env.ts's engineCwd: never a folder of someone else's files). */
  cwd: string;
}

export class EngineProcess {
  private readonly proc: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderrTail = '';
  private dead: TorchEngineError | null = null;
  readonly exited: Promise<void>;

  constructor(o: EngineProcessOptions) {
    // Its own process group: a Ctrl-C in the trainer's terminal reaches the trainer, which stops after
    // the current step and closes the engine, instead of killing the engine mid-step. The engine ends
    // when its stdin closes, so it never outlives the trainer.
    this.proc = spawn(o.command, o.args, { stdio: ['pipe', 'pipe', 'pipe'], env: o.env, detached: true, cwd: o.cwd });
    this.exited = new Promise<void>((resolve) => {
      this.proc.once('exit', (code, signal) => {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        this.fail(new TorchEngineError(`the torch engine process (${o.label}) ${how}${this.tail()}`, 'exited'));
        resolve();
      });
      this.proc.once('error', (err) => {
        this.fail(new TorchEngineError(`the torch engine could not start ${o.command}: ${err.message}`, 'exited'));
        resolve();
      });
    });
    this.proc.stdin!.on('error', () => {
      /* EPIPE after the process died: the exit handler reports it */
    });
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (s: string) => {
      this.stderrTail = (this.stderrTail + s).slice(-8000);
    });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (line) => this.onLine(line));
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get alive(): boolean {
    return this.dead === null;
  }

  request(op: string, fields: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, op });
      this.proc.stdin!.write(JSON.stringify({ ...fields, op, id }, encodeFloats) + '\n');
    });
  }

  /** Asks the engine to exit and waits for it (killed after `graceMs`). */
  async close(graceMs = 10_000): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      if (!this.dead) {
        try {
          this.proc.stdin!.end(JSON.stringify({ op: 'shutdown', id: 0 }) + '\n');
        } catch {
          /* already closed */
        }
      }
      const killer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(killer);
    }
    this.fail(new TorchEngineError('the torch engine is closed', 'closed'));
  }

  private onLine(line: string): void {
    if (!line.trim()) return;
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line, reviveFloats);
    } catch {
      this.stderrTail = (this.stderrTail + `\n[stdout] ${line}`).slice(-8000);
      return;
    }
    const id = msg.id;
    const p = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (!p) {
      if (msg.ok === false) this.stderrTail = (this.stderrTail + `\n${String(msg.error)}`).slice(-8000);
      return;
    }
    this.pending.delete(id as number);
    if (msg.ok === true) p.resolve(msg);
    else p.reject(new TorchEngineError(String(msg.error ?? `${p.op} failed`), String(msg.kind ?? 'engine')));
  }

  private fail(err: TorchEngineError): void {
    if (!this.dead) this.dead = err;
    for (const [id, p] of this.pending) {
      p.reject(new TorchEngineError(`${err.message} (while waiting for ${p.op})`, err.kind));
      this.pending.delete(id);
    }
  }

  private tail(): string {
    const lines = this.stderrTail.trim().split('\n').filter((l) => l.trim() && !/^\s*warnings\.warn|FutureWarning|UserWarning/.test(l));
    const t = lines.slice(-8).join('\n').trim();
    return t ? `; its last output:\n${t.slice(-2000)}` : '';
  }
}
