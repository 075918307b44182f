/**
 * The host's side of one webview panel's conversation (webview/protocol.ts; docs/panels.md): every
 * message from the panel is validated, every request answered — with data, or with an `error` message
 * the panel shows — and the runs the panel watches are followed so that what the trainer appends
 * reaches the panel (`tick()`, called on a timer). No `vscode` here: the editor's side only connects
 * `send` to `webview.postMessage` and `receive` to `onDidReceiveMessage`, so this is tested in Node.
 */
import * as path from 'node:path';
import { RunDirError, RunReader, realFolderInRun, runLayout, type RunDelta, type RunFollower } from '../rundir';
import {
  PROTOCOL_VERSION,
  parseWebviewMessage,
  type AdapterRef,
  type HostMessage,
  type PanelKind,
  type RunData,
  type RunSummary,
  type SweepOverview,
  type WebviewMessage,
} from '../../webview/protocol';
import { JobCancelled, type Submitted } from '../panel-worker/client';
import type { PanelJobOf, PanelJobResults } from '../panel-worker/protocol';
import type { ApprovedJudge } from '../trainer/judges/endpoint-approval';

export type Focus = { runs: string[]; round?: number; exchange?: string } | null;

export interface RunLookup {
  summaries(): RunSummary[];
  /** The sweeps of seeds (the dashboard's sweep rows and bands). */
  sweeps(): SweepOverview[];
  /** The directory of a run key, or undefined when the host knows no such run. */
  dirOf(key: string): string | undefined;
}

/** The panel worker's two jobs, as the session needs them (PanelWorkerClient; tests do them in-process). */
export interface PanelWorker {
  adapterDiff(left: string, right: string, baseModel: string | null, onProgress?: (done: number, total: number) => void): Submitted<PanelJobResults['adapter-diff']>;
  replay(input: Omit<PanelJobOf<'replay'>, 'type'>, onProgress?: (done: number, total: number) => void): Submitted<PanelJobResults['replay']>;
  cancel(id: number): void;
}

export interface PanelServices {
  runs: RunLookup;
  /** The panel worker; null when it cannot be used (its script is missing, say): requests get an error. */
  panelWorker: PanelWorker | null;
  /** Opens the exchange in the editor for annotating. */
  annotate(runDir: string, round: number, exchange: string): Promise<void> | void;
  log(line: string): void;
  /**
   * The judge endpoints the user approves for a replay on this run (asking when its config names one
   * not yet approved); absent or [] leaves a run's http judge unused (the replay has no labels then).
   */
  approveJudges?(runDir: string): Promise<ApprovedJudge[] | undefined>;
}

export type Send = (message: HostMessage) => PromiseLike<unknown> | void;

interface Watched {
  reader: RunReader;
  follower: RunFollower;
}

/** Adapter folder names are plain names: a slot like "../x" must never become a path outside the run. */
const SLOT = /^[A-Za-z0-9_-]+$/;

export class PanelSession {
  private panelKind: PanelKind | null = null;
  private ready = false;
  private focus: Focus;
  private watched = new Map<string, Watched>();
  /** Panel request ids → panel worker job ids, while they run. */
  private pending = new Map<string, number>();
  private disposed = false;

  constructor(
    private readonly send: Send,
    private readonly services: PanelServices,
    options: { kind?: PanelKind; focus?: Focus } = {},
  ) {
    this.panelKind = options.kind ?? null;
    this.focus = options.focus ?? null;
  }

  get kind(): PanelKind | null {
    return this.panelKind;
  }

  /** Runs the panel currently watches (for tests and the log). */
  get watchedRuns(): string[] {
    return [...this.watched.keys()];
  }

  /** Validates and answers one message from the panel. Never throws. */
  async receive(raw: unknown): Promise<void> {
    if (this.disposed) return;
    const parsed = parseWebviewMessage(raw);
    if (!parsed.ok) {
      this.services.log(`panel ${this.panelKind ?? '?'}: ${parsed.error}`);
      await this.post({ type: 'error', message: `ABSP Lab ignored a message from this panel: ${parsed.error}` });
      return;
    }
    const msg = parsed.message;
    try {
      await this.handle(msg);
    } catch (e) {
      this.services.log(`panel ${this.panelKind ?? '?'}: ${msg.type} failed: ${(e as Error).stack ?? e}`);
      const requestId = 'requestId' in msg ? msg.requestId : undefined;
      // Only a run that cannot be read becomes that run's error; anything else is the panel's.
      const run = e instanceof RunDirError && 'run' in msg && typeof msg.run === 'string' ? msg.run : undefined;
      await this.post({ type: 'error', ...(requestId ? { requestId } : run ? { run, kind: errorKind(e) } : {}), message: (e as Error).message });
    }
  }

  /** Shows other runs (a click in the Runs view): a new `init` with them as focus. */
  async setFocus(focus: Focus): Promise<void> {
    this.focus = focus;
    if (this.ready && this.panelKind) await this.sendInit(this.panelKind);
  }

  /** The runs list changed. */
  async pushRuns(): Promise<void> {
    if (this.ready) await this.post({ type: 'runs', runs: this.services.runs.summaries(), sweeps: this.services.runs.sweeps() });
  }

  /** Polls every watched run once and sends what was appended. */
  async tick(): Promise<void> {
    if (this.disposed) return;
    for (const [run, w] of [...this.watched]) {
      let delta: RunDelta;
      try {
        delta = w.follower.poll();
      } catch (e) {
        this.watched.delete(run);
        await this.post({ type: 'error', run, kind: errorKind(e), message: (e as Error).message });
        continue;
      }
      this.logSkipped(run, delta);
      if (delta.reset) {
        await this.post({ type: 'run-data', data: runData(run, w.reader, delta) });
        await this.post({ type: 'annotations', run, annotations: w.reader.annotations() });
        continue;
      }
      if (delta.info || delta.rounds.length || delta.events.length || delta.nashgap.length || delta.crossplay !== undefined || delta.evals !== undefined) {
        await this.post({
          type: 'run-append',
          run,
          info: delta.info,
          status: delta.status,
          rounds: delta.rounds,
          events: delta.events,
          nashgap: delta.nashgap,
          ...(delta.crossplay !== undefined ? { crossplay: delta.crossplay } : {}),
          ...(delta.evals !== undefined ? { evals: delta.evals } : {}),
        });
      }
      const byRound = new Map<number, typeof delta.exchanges>();
      for (const x of delta.exchanges) byRound.set(x.round, [...(byRound.get(x.round) ?? []), x]);
      for (const [round, exchanges] of byRound) await this.post({ type: 'transcript-append', run, round, exchanges });
      if (delta.annotations.length) await this.post({ type: 'annotations', run, annotations: w.reader.annotations() });
    }
  }

  dispose(): void {
    this.disposed = true;
    for (const id of this.pending.values()) this.services.panelWorker?.cancel(id);
    this.pending.clear();
    this.watched.clear();
  }

  private async post(message: HostMessage): Promise<void> {
    if (this.disposed) return;
    try {
      await this.send(message);
    } catch (e) {
      // The panel was closed between the check and the send; nothing to tell it.
      this.services.log(`panel ${this.panelKind ?? '?'}: could not send ${message.type}: ${(e as Error).message}`);
    }
  }

  /**
   * The focus is sent once: a panel hidden and shown again (VS Code rebuilds its page, which sends
   * `ready` again) comes back from its own saved state, not from the run it was first opened on.
   */
  private async sendInit(panel: PanelKind): Promise<void> {
    const known = new Set(this.services.runs.summaries().map((s) => s.run));
    const focus = this.focus ? { ...this.focus, runs: this.focus.runs.filter((r) => known.has(r)) } : null;
    this.focus = null;
    await this.post({ type: 'init', protocol: PROTOCOL_VERSION, panel, runs: this.services.runs.summaries(), sweeps: this.services.runs.sweeps(), focus: focus && focus.runs.length ? focus : null });
  }

  private async handle(msg: WebviewMessage): Promise<void> {
    switch (msg.type) {
      case 'ready':
        if (msg.protocol !== PROTOCOL_VERSION) {
          await this.post({ type: 'error', message: `This panel speaks protocol ${msg.protocol} and the extension ${PROTOCOL_VERSION}: close the panel and open it again.` });
        }
        this.panelKind = msg.panel;
        this.ready = true;
        this.watched.clear();
        await this.sendInit(msg.panel);
        return;
      case 'watch-runs':
        for (const run of [...this.watched.keys()]) if (!msg.runs.includes(run)) this.watched.delete(run);
        for (const run of msg.runs) if (!this.watched.has(run)) await this.watch(run);
        return;
      case 'request-transcript': {
        const reader = this.reader(msg.run);
        await this.post({ type: 'transcript', run: msg.run, round: msg.round, exchanges: reader.transcript(msg.round) });
        return;
      }
      case 'annotate':
        await this.services.annotate(this.dirOf(msg.run), msg.round, msg.exchange);
        return;
      case 'replay':
        await this.replay(msg);
        return;
      case 'adapter-diff':
        await this.adapterDiff(msg);
        return;
      case 'cancel': {
        const id = this.pending.get(msg.requestId);
        if (id !== undefined) this.services.panelWorker?.cancel(id);
        this.pending.delete(msg.requestId);
        return;
      }
      case 'webview-error':
        this.services.log(`panel ${this.panelKind ?? '?'} reported: ${msg.message}${msg.detail ? `\n${msg.detail}` : ''}`);
        return;
    }
  }

  private dirOf(run: string): string {
    const dir = this.services.runs.dirOf(run);
    if (!dir) throw new RunDirError('not-a-run', run, `ABSP Lab does not know a run ${run}: it is not in the runs folder (it may have been moved or deleted)`);
    return dir;
  }

  private reader(run: string): RunReader {
    return this.watched.get(run)?.reader ?? RunReader.open(this.dirOf(run));
  }

  private async watch(run: string): Promise<void> {
    let reader: RunReader;
    try {
      reader = RunReader.open(this.dirOf(run));
    } catch (e) {
      await this.post({ type: 'error', run, kind: errorKind(e), message: (e as Error).message });
      return;
    }
    const follower = reader.follow({ transcripts: this.panelKind === 'stepper' });
    const delta = follower.poll();
    this.logSkipped(run, delta);
    this.watched.set(run, { reader, follower });
    await this.post({ type: 'run-data', data: runData(run, reader, delta) });
    await this.post({ type: 'annotations', run, annotations: reader.annotations() });
  }

  private logSkipped(run: string, delta: RunDelta): void {
    for (const s of delta.skipped) this.services.log(`${path.basename(run)}: skipped ${path.basename(s.file)} line ${s.line}: ${s.problem}`);
  }

  private async replay(msg: Extract<WebviewMessage, { type: 'replay' }>): Promise<void> {
    const worker = this.services.panelWorker;
    if (!worker) throw new Error('replay needs the panel worker, which is not available in this installation');
    const runDir = this.dirOf(msg.run);
    const approvedJudges = (await this.services.approveJudges?.(runDir)) ?? [];
    const started = Date.now();
    const job = worker.replay({ runDir, round: msg.round, exchange: msg.exchange, adapterRound: msg.adapterRound, ...(msg.samples !== undefined ? { samples: msg.samples } : {}), approvedJudges });
    this.pending.set(msg.requestId, job.id);
    try {
      const out = await job.result;
      this.services.log(`replayed ${out.exchange} against the round ${out.adapterRound} defender in ${Date.now() - started} ms (${out.elapsed_ms} ms in the panel worker)`);
      if (out.judgeError) this.services.log(`replay of ${out.exchange}: ${out.judgeError}`);
      const { judgeError: _ignored, ...result } = out;
      await this.post({ type: 'replay-result', requestId: msg.requestId, result });
    } catch (e) {
      if (!(e instanceof JobCancelled)) await this.post({ type: 'error', requestId: msg.requestId, message: (e as Error).message });
    } finally {
      this.pending.delete(msg.requestId);
    }
  }

  private async adapterDiff(msg: Extract<WebviewMessage, { type: 'adapter-diff' }>): Promise<void> {
    const worker = this.services.panelWorker;
    if (!worker) throw new Error('the adapter diff needs the panel worker, which is not available in this installation');
    const folder = (ref: AdapterRef) => {
      if (!SLOT.test(ref.slot)) throw new Error(`"${ref.slot}" is not an adapter folder name`);
      const runDir = this.dirOf(ref.run);
      return realFolderInRun(runDir, runLayout(runDir).slot(ref.round, ref.slot));
    };
    const left = folder(msg.left);
    const right = folder(msg.right);
    let baseModel: string | null = null;
    try {
      const model = RunReader.open(this.dirOf(msg.left.run)).config()?.model;
      baseModel = typeof model === 'string' ? model : null;
    } catch {
      baseModel = null;
    }
    const job = worker.adapterDiff(left, right, baseModel, (done, total) => void this.post({ type: 'adapter-diff-progress', requestId: msg.requestId, done, total }));
    this.pending.set(msg.requestId, job.id);
    try {
      const diff = await job.result;
      await this.post({
        type: 'adapter-diff-result',
        requestId: msg.requestId,
        result: { left: msg.left, right: msg.right, modules: diff.modules, onlyLeft: diff.onlyLeft, onlyRight: diff.onlyRight, warnings: diff.warnings },
      });
    } catch (e) {
      if (!(e instanceof JobCancelled)) await this.post({ type: 'error', requestId: msg.requestId, message: (e as Error).message });
    } finally {
      this.pending.delete(msg.requestId);
    }
  }
}

function errorKind(e: unknown): 'not-a-run' | 'newer-format' | 'corrupt' | 'unreadable' | 'other' {
  return e instanceof RunDirError ? e.kind : 'other';
}

function runData(run: string, reader: RunReader, delta: RunDelta): RunData {
  return {
    run,
    info: delta.info ?? reader.info,
    status: delta.status,
    rounds: delta.rounds,
    events: delta.events,
    nashgap: delta.nashgap,
    crossplay: delta.crossplay ?? null,
    evals: delta.evals ?? reader.evals(),
    transcriptRounds: reader.transcriptRounds(),
    issues: [...delta.skipped, ...reader.issues()],
  };
}
