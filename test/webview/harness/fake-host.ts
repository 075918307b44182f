/**
 * The extension host's side of the panel protocol, without VS Code: it answers a panel's requests from
 * real run directories through the real RunReader, follows them for live updates (tick()), computes
 * adapter diffs with the real math, and answers replays with a stand-in (the engine is not needed to
 * test the panel). It is also a reference for the real host's message handling.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diffAdapters, loadLoraAdapter } from '../../../extension/analysis/adapter-diff';
import {
  RunDirError,
  RunReader,
  listRuns,
  readRunInfo,
  roundDirName,
  type RunDelta,
  type RunFollower,
} from '../../../extension/rundir';
import {
  PROTOCOL_VERSION,
  parseWebviewMessage,
  type AdapterRef,
  type HostMessage,
  type PanelKind,
  type ReplayResult,
  type RunData,
  type RunSummary,
  type WebviewMessage,
} from '../../../webview/protocol';

export type Send = (message: HostMessage | Record<string, unknown>) => Promise<void>;
export type ReplayHandler = (request: Extract<WebviewMessage, { type: 'replay' }>, host: FakeHost) => Promise<ReplayResult>;

export interface FakeHostOptions {
  /** Every run directory in it is offered to the panel. */
  runsFolder?: string;
  /** More run directories, by key (e.g. damaged copies made by a test). */
  extraRuns?: Record<string, string>;
  focus?: { runs: string[]; round?: number; exchange?: string } | null;
  replay?: ReplayHandler;
  /** Only with a delay do loading states stay on screen long enough to be seen. */
  replayDelayMs?: number;
}

interface Watched {
  reader: RunReader;
  follower: RunFollower;
}

export class FakeHost {
  /** Every valid message the panel sent, in order. */
  readonly received: WebviewMessage[] = [];
  /** Messages from the panel that failed validation. */
  readonly rejected: { message: unknown; error: string }[] = [];
  panel: PanelKind | null = null;
  private send: Send = async () => {};
  private watched = new Map<string, Watched>();

  constructor(private readonly options: FakeHostOptions) {}

  connect(send: Send): void {
    this.send = send;
  }

  /** Resets per-page state (a reload starts a new page; the run folder stays). */
  reset(): void {
    this.watched.clear();
    this.received.length = 0;
  }

  runDirs(): Map<string, string> {
    const dirs = new Map<string, string>();
    if (this.options.runsFolder) {
      for (const entry of listRuns(this.options.runsFolder)) dirs.set(path.basename(entry.dir), entry.dir);
    }
    for (const [key, dir] of Object.entries(this.options.extraRuns ?? {})) dirs.set(key, dir);
    return dirs;
  }

  summaries(): RunSummary[] {
    return [...this.runDirs()].map(([run, dir]) => summarise(run, dir));
  }

  async receive(raw: unknown): Promise<void> {
    const parsed = parseWebviewMessage(raw);
    if (!parsed.ok) {
      this.rejected.push({ message: raw, error: parsed.error });
      return;
    }
    const msg = parsed.message;
    this.received.push(msg);
    try {
      await this.handle(msg);
    } catch (e) {
      await this.send({ type: 'error', requestId: 'requestId' in msg ? msg.requestId : undefined, message: (e as Error).message });
    }
  }

  private async handle(msg: WebviewMessage): Promise<void> {
    switch (msg.type) {
      case 'ready':
        this.panel = msg.panel;
        this.watched.clear();
        await this.send({ type: 'init', protocol: PROTOCOL_VERSION, panel: msg.panel, runs: this.summaries(), focus: this.options.focus ?? null });
        return;
      case 'watch-runs':
        for (const run of [...this.watched.keys()]) if (!msg.runs.includes(run)) this.watched.delete(run);
        for (const run of msg.runs) if (!this.watched.has(run)) await this.watch(run);
        return;
      case 'request-transcript': {
        const reader = this.reader(msg.run);
        await this.send({ type: 'transcript', run: msg.run, round: msg.round, exchanges: reader.transcript(msg.round) });
        return;
      }
      case 'replay':
        await this.replay(msg);
        return;
      case 'adapter-diff':
        await this.adapterDiff(msg);
        return;
      case 'annotate':
      case 'cancel':
      case 'webview-error':
        return; // recorded in `received` for the tests to look at
    }
  }

  /** Polls every watched run once and sends what changed, as the real host does on a file watch. */
  async tick(): Promise<void> {
    for (const [run, w] of this.watched) {
      const delta = w.follower.poll();
      if (delta.reset) {
        await this.send({ type: 'run-data', data: this.runData(run, w.reader, delta) });
        continue;
      }
      if (delta.info || delta.rounds.length || delta.events.length || delta.nashgap.length || delta.crossplay !== undefined) {
        await this.send({
          type: 'run-append',
          run,
          info: delta.info,
          status: delta.status,
          rounds: delta.rounds,
          events: delta.events,
          nashgap: delta.nashgap,
          ...(delta.crossplay !== undefined ? { crossplay: delta.crossplay } : {}),
        });
      }
      const byRound = new Map<number, typeof delta.exchanges>();
      for (const x of delta.exchanges) byRound.set(x.round, [...(byRound.get(x.round) ?? []), x]);
      for (const [round, exchanges] of byRound) await this.send({ type: 'transcript-append', run, round, exchanges });
      if (delta.annotations.length) await this.send({ type: 'annotations', run, annotations: w.reader.annotations() });
    }
  }

  private async watch(run: string): Promise<void> {
    const dir = this.runDirs().get(run);
    if (!dir) {
      await this.send({ type: 'error', run, kind: 'not-a-run', message: `no run called ${run}` });
      return;
    }
    let reader: RunReader;
    try {
      reader = RunReader.open(dir);
    } catch (e) {
      const kind = e instanceof RunDirError ? e.kind : 'other';
      await this.send({ type: 'error', run, kind, message: (e as Error).message });
      return;
    }
    const follower = reader.follow({ transcripts: this.panel === 'stepper' });
    this.watched.set(run, { reader, follower });
    await this.send({ type: 'run-data', data: this.runData(run, reader, follower.poll()) });
    await this.send({ type: 'annotations', run, annotations: reader.annotations() });
  }

  private runData(run: string, reader: RunReader, delta: RunDelta): RunData {
    return {
      run,
      info: delta.info ?? reader.info,
      status: delta.status,
      rounds: delta.rounds,
      events: delta.events,
      nashgap: delta.nashgap,
      crossplay: delta.crossplay ?? null,
      transcriptRounds: reader.transcriptRounds(),
      issues: [...delta.skipped, ...reader.issues()],
    };
  }

  reader(run: string): RunReader {
    const w = this.watched.get(run);
    if (w) return w.reader;
    const dir = this.runDirs().get(run);
    if (!dir) throw new Error(`no run called ${run}`);
    return RunReader.open(dir);
  }

  private async replay(msg: Extract<WebviewMessage, { type: 'replay' }>): Promise<void> {
    if (this.options.replayDelayMs) await new Promise((r) => setTimeout(r, this.options.replayDelayMs));
    try {
      const result = await (this.options.replay ?? cannedReplay)(msg, this);
      await this.send({ type: 'replay-result', requestId: msg.requestId, result });
    } catch (e) {
      await this.send({ type: 'error', requestId: msg.requestId, message: (e as Error).message });
    }
  }

  private async adapterDiff(msg: Extract<WebviewMessage, { type: 'adapter-diff' }>): Promise<void> {
    const folder = (ref: AdapterRef) => {
      const dir = this.runDirs().get(ref.run);
      if (!dir) throw new Error(`no run called ${ref.run}`);
      return path.join(dir, 'rounds', roundDirName(ref.round), ref.slot);
    };
    try {
      const left = loadLoraAdapter(folder(msg.left));
      const right = loadLoraAdapter(folder(msg.right));
      const progress: Promise<void>[] = [];
      const diff = diffAdapters(left, right, (done, total) => {
        progress.push(this.send({ type: 'adapter-diff-progress', requestId: msg.requestId, done, total }));
      });
      await Promise.all(progress);
      await this.send({
        type: 'adapter-diff-result',
        requestId: msg.requestId,
        result: { left: msg.left, right: msg.right, modules: diff.modules, onlyLeft: diff.onlyLeft, onlyRight: diff.onlyRight, warnings: diff.warnings },
      });
    } catch (e) {
      await this.send({ type: 'error', requestId: msg.requestId, message: (e as Error).message });
    }
  }
}

/** A stand-in for the engine: the later defender refuses what the recorded one answered. */
const cannedReplay: ReplayHandler = async (msg, host) => {
  const x = host.reader(msg.run).transcript(msg.round).find((e) => e.id === msg.exchange);
  if (!x) throw new Error(`exchange ${msg.exchange} is not in round ${msg.round}`);
  const refused = x.seed.harmful;
  const text = refused ? "I can't help with that, however it is framed." : 'Sure — here is a helpful answer.';
  return {
    exchange: x.id,
    adapterRound: msg.adapterRound,
    adapters: { attacker: null, defender: `rounds/${roundDirName(msg.adapterRound)}/defender` },
    defender: { thought: 'Same intent as before, new frame. Refuse.', text, raw: `<think>…</think><answer>${text}</answer>` },
    judge: { prompt_harmful: x.seed.harmful, refusal: refused, response_harmful: false, unparsable: false },
    elapsed_ms: 1234,
  };
};

function summarise(run: string, dir: string): RunSummary {
  try {
    const info = readRunInfo(dir);
    const reader = RunReader.open(dir);
    return {
      run,
      label: info.name,
      mode: info.mode,
      status: reader.status(),
      rounds_completed: info.rounds_completed,
      rounds_planned: info.rounds_planned,
      adapters: adapterSlots(dir, reader),
      error: null,
    };
  } catch (e) {
    const kind = e instanceof RunDirError ? e.kind : 'other';
    return { run, label: path.basename(dir), mode: null, status: null, rounds_completed: null, rounds_planned: null, error: { kind, message: (e as Error).message } };
  }
}

/** Adapter folders (those with an adapter_config.json) of each complete round. */
function adapterSlots(dir: string, reader: RunReader): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const r of reader.rounds()) {
    const roundDir = path.join(dir, 'rounds', roundDirName(r.round));
    out[String(r.round)] = fs
      .readdirSync(roundDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && fs.existsSync(path.join(roundDir, d.name, 'adapter_config.json')))
      .map((d) => d.name)
      .sort();
  }
  return out;
}
