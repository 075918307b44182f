/**
 * Mocha helper for the PyTorch reference implementation in test/reference/.
 *
 * The reference (test/reference/server.py) is a JSON-lines server computing Qwen2 + PEFT LoRA
 * log-probs, greedy decodes, gradients and SGD steps in float64.  See test/reference/README.md
 * for the protocol.
 *
 *   describeWithTorch("engine vs torch", (torch) => {
 *     it("log-probs agree", async () => {
 *       const r = await torch().request({ op: "logprobs", model: dir, rows: [{ ids: [1, 2, 3] }] });
 *       ...
 *     });
 *   });
 */
import { findEnginePython as findTorchPython } from "../../extension/engine/torch/python-env";
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import * as readline from "node:readline";

export const TORCH_MISSING_REASON = "no PyTorch engine environment (run `absp torch setup --venv .absp-cache/torch-venv`, as scripts/test.sh does)";

/** Absolute path of the reference's JSON-lines server. */
export const TORCH_SERVER_PATH = path.resolve(__dirname, "..", "reference", "server.py");

/** One row of a batch request: token ids, optional 0/1 mask (left padding), adapter index or -1. */
export interface TorchRow {
  ids: number[];
  mask?: number[];
  adapter?: number;
}

export interface TorchReferenceOptions {
  /** Python executable; defaults to findTorchPython(). */
  python?: string;
  /** Per-request timeout in ms (default 600000). */
  timeoutMs?: number;
  /** torch.set_num_threads for the server (default: torch's own choice). */
  threads?: number;
  /** Extra environment for the server process. */
  env?: NodeJS.ProcessEnv;
}

export { findTorchPython };

interface Pending {
  resolve: (v: any) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  op: string;
}

/** Error for a request that the server answered with {"ok": false}. */
export class TorchReferenceError extends Error {
  constructor(
    message: string,
    readonly response: Record<string, unknown>,
  ) {
    super(message);
    this.name = "TorchReferenceError";
  }
}

export class TorchReference {
  private readonly proc: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderrTail = "";
  private dead: Error | null = null;
  private readonly exited: Promise<void>;
  private readonly timeoutMs: number;

  private constructor(python: string, opts: TorchReferenceOptions) {
    this.timeoutMs = opts.timeoutMs ?? 600_000;
    const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: "1", ...opts.env };
    if (opts.threads !== undefined) env.ABSP_TORCH_THREADS = String(opts.threads);
    this.proc = spawn(python, ["-u", TORCH_SERVER_PATH], { stdio: ["pipe", "pipe", "pipe"], env });
    this.exited = new Promise<void>((resolve) => {
      this.proc.once("exit", (code, signal) => {
        this.fail(new Error(`torch reference server exited (code ${code}, signal ${signal})${this.tail()}`));
        resolve();
      });
      this.proc.once("error", (err) => {
        this.fail(new Error(`torch reference server could not run ${python}: ${err.message}`));
        resolve();
      });
    });
    this.proc.stdin!.on("error", () => {
      /* EPIPE after the process died: reported by the exit handler */
    });
    this.proc.stderr!.setEncoding("utf8");
    this.proc.stderr!.on("data", (s: string) => {
      this.stderrTail = (this.stderrTail + s).slice(-4000);
    });
    const rl = readline.createInterface({ input: this.proc.stdout! });
    rl.on("line", (line) => this.onLine(line));
    // An idle server must not keep mocha alive; pending requests hold their own timers.
    this.proc.unref();
    for (const s of [this.proc.stdin, this.proc.stdout, this.proc.stderr]) {
      (s as unknown as { unref?: () => void }).unref?.();
    }
  }

  /** Spawns the server and checks that it answers; null when no python can import torch. */
  static async start(opts: TorchReferenceOptions = {}): Promise<TorchReference | null> {
    const python = opts.python ?? findTorchPython();
    if (!python) return null;
    const ref = new TorchReference(python, opts);
    try {
      await ref.request({ op: "ping" }, 120_000);
    } catch (e) {
      await ref.close();
      throw e;
    }
    return ref;
  }

  /** Sends one request; resolves with the response (ok: true) or rejects with its error. */
  async request(obj: Record<string, unknown>, timeoutMs?: number): Promise<any> {
    const resp = await this.requestRaw(obj, timeoutMs);
    if (resp.ok !== true) {
      throw new TorchReferenceError(`torch reference ${String(obj.op)}: ${String(resp.error)}`, resp);
    }
    return resp;
  }

  /** Like request() but resolves with {"ok": false, ...} responses instead of rejecting. */
  requestRaw(obj: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, any>> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    const op = String(obj.op);
    let text: string;
    try {
      text = JSON.stringify({ ...obj, id });
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    return new Promise((resolve, reject) => {
      const ms = timeoutMs ?? this.timeoutMs;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`torch reference timed out after ${ms} ms on op ${op}${this.tail()}`));
        // The server's state is unknown now: stop it so later requests fail fast.
        this.fail(new Error(`torch reference was stopped after a timeout on op ${op}`));
        this.proc.kill("SIGKILL");
      }, ms);
      this.pending.set(id, { resolve, reject, timer, op });
      this.proc.stdin!.write(text + "\n");
    });
  }

  /** Asks the server to exit and waits for it (kills it after 5 s). */
  async close(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null && !this.dead) {
      try {
        this.proc.stdin!.end(JSON.stringify({ op: "shutdown" }) + "\n");
      } catch {
        /* already closed */
      }
      const killer = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
      await this.exited;
      clearTimeout(killer);
    } else if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGKILL");
      await this.exited;
    }
    this.fail(new Error("torch reference is closed"));
  }

  private onLine(line: string): void {
    if (!line.trim()) return;
    let msg: any;
    try {
      msg = JSON.parse(line);
    } catch {
      this.stderrTail = (this.stderrTail + `\n[stdout] ${line}`).slice(-4000);
      return;
    }
    const p = typeof msg?.id === "number" ? this.pending.get(msg.id) : undefined;
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    delete msg.id;
    p.resolve(msg);
  }

  private fail(err: Error): void {
    if (!this.dead) this.dead = err;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`${err.message} (while waiting for op ${p.op})`));
      this.pending.delete(id);
    }
  }

  private tail(): string {
    const t = this.stderrTail.trim();
    return t ? `; server stderr: ${t.slice(-1500)}` : "";
  }
}

/**
 * describe() that starts one TorchReference for the suite (before/after hooks) and passes a
 * getter for it.  Without a python that can import torch, registers a single skipped test
 * whose title says why.
 */
export function describeWithTorch(
  title: string,
  fn: (torch: () => TorchReference) => void,
  opts: TorchReferenceOptions = {},
): void {
  if (!findTorchPython()) {
    describe(title, () => {
      it.skip(TORCH_MISSING_REASON, () => undefined);
    });
    return;
  }
  describe(title, function () {
    let ref: TorchReference | null = null;
    before(async function () {
      this.timeout(180_000);
      ref = await TorchReference.start(opts);
      if (!ref) throw new Error(TORCH_MISSING_REASON);
    });
    after(async function () {
      this.timeout(30_000);
      await ref?.close();
      ref = null;
    });
    fn(() => {
      if (!ref) throw new Error("the torch reference is not started (use it inside it() or hooks)");
      return ref;
    });
  });
}
