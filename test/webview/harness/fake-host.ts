/**
 * The extension host's side of the panel protocol, without VS Code: the real PanelSession (the same
 * message handling the extension runs) over real run directories, with a run lookup keyed by run id,
 * the adapter diff computed in-process with the real math, and replays answered by a stand-in (the
 * engine is not needed to test the panel). It records what the panel sent for the tests to inspect.
 */
import * as path from 'node:path';
import { readPeftAdapter as loadLoraAdapter } from '../../../extension/engine/lora/adapter';
import { diffAdapters } from '../../../extension/panel-worker/adapter-diff';
import { sampleRates } from '../../../extension/panel-worker/replay-rates';
import type { ReplayOutput } from '../../../extension/panel-worker/protocol';
import { PanelSession, type PanelWorker as PanelEngine, type RunLookup } from '../../../extension/host/panel-session';
import { summarise, withRunLabels } from '../../../extension/host/run-catalog';
import { labelSweeps, listSweepDirs, summariseSweep } from '../../../extension/host/sweep-overview';
import { RunReader, listRuns, roundDirName } from '../../../extension/rundir';
import { parseWebviewMessage, type HostMessage, type PanelKind, type ReplayResult, type RunSummary, type SweepOverview, type WebviewMessage } from '../../../webview/protocol';

export type Send = (message: HostMessage | Record<string, unknown>) => Promise<void>;
export type ReplayRequest = Pick<Extract<WebviewMessage, { type: 'replay' }>, 'run' | 'round' | 'exchange' | 'adapterRound' | 'samples'>;
export type ReplayHandler = (request: ReplayRequest, host: FakeHost) => Promise<ReplayResult>;

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

export class FakeHost {
  /** Every valid message the panel sent, in order. */
  readonly received: WebviewMessage[] = [];
  /** Messages from the panel that failed validation. */
  readonly rejected: { message: unknown; error: string }[] = [];
  /** What the session logged (the real host writes it to its output channel). */
  readonly log: string[] = [];
  private send: Send = async () => {};
  private session: PanelSession;
  private jobs = 0;

  constructor(private readonly options: FakeHostOptions) {
    this.session = this.newSession(options.focus ?? null);
  }

  get panel(): PanelKind | null {
    return this.session.kind;
  }

  connect(send: Send): void {
    this.send = send;
  }

  /**
   * A window reload: a new page and a new session without a focus, as the real host's serializer
   * makes for a restored panel (the panel's saved state decides what it shows).
   */
  reset(): void {
    this.session.dispose();
    this.session = this.newSession(null);
    this.received.length = 0;
  }

  /** A click in the Runs view on a run of an open panel: the host shows it (a new `init`). */
  async setFocus(focus: FakeHostOptions['focus']): Promise<void> {
    await this.session.setFocus(focus ?? null);
  }

  runDirs(): Map<string, string> {
    const dirs = new Map<string, string>();
    if (this.options.runsFolder) {
      for (const entry of listRuns(this.options.runsFolder)) dirs.set(path.basename(entry.dir), entry.dir);
    }
    for (const [key, dir] of Object.entries(this.options.extraRuns ?? {})) dirs.set(key, dir);
    return dirs;
  }

  /** The runs as the host's catalog summarises and labels them, keyed by id instead of path. */
  summaries(): RunSummary[] {
    const keyed = [...this.runDirs()];
    const entries = withRunLabels(keyed.map(([, dir]) => summarise(dir)));
    return entries.map((e, i) => ({ ...e.summary, run: keyed[i][0] }));
  }

  /** The sweeps of seeds in the runs folder, summarised and labelled as the host's catalog does. */
  sweeps(): SweepOverview[] {
    return this.options.runsFolder ? labelSweeps(listSweepDirs(this.options.runsFolder).map((dir) => summariseSweep(dir))) : [];
  }

  reader(run: string): RunReader {
    const dir = this.runDirs().get(run);
    if (!dir) throw new Error(`no run called ${run}`);
    return RunReader.open(dir);
  }

  async receive(raw: unknown): Promise<void> {
    const parsed = parseWebviewMessage(raw);
    if (parsed.ok) this.received.push(parsed.message);
    else this.rejected.push({ message: raw, error: parsed.error });
    await this.session.receive(raw);
  }

  /** The runs list changed (a run was added): the host tells the panel, as its catalog does. */
  async pushRuns(): Promise<void> {
    await this.session.pushRuns();
  }

  /** Polls every watched run once and sends what changed, as the real host does on a file watch. */
  async tick(): Promise<void> {
    await this.session.tick();
  }

  private newSession(focus: FakeHostOptions['focus']): PanelSession {
    const lookup: RunLookup = {
      summaries: () => this.summaries(),
      sweeps: () => this.sweeps(),
      dirOf: (key) => this.runDirs().get(key),
    };
    return new PanelSession((m) => this.send(m), {
      runs: lookup,
      panelWorker: this.panelWorker(),
      annotate: () => {}, // recorded in `received`
      log: (line) => this.log.push(line),
    }, { focus: focus ?? null });
  }

  /** The panel worker's two jobs, done in this process. */
  private panelWorker(): PanelEngine {
    const keyOf = (dir: string) => [...this.runDirs()].find(([, d]) => path.resolve(d) === path.resolve(dir))?.[0] ?? dir;
    return {
      adapterDiff: (left, right, _baseModel, onProgress) => {
        const result = (async () => {
          await Promise.resolve();
          return diffAdapters(loadLoraAdapter(left), loadLoraAdapter(right), onProgress);
        })();
        return { id: ++this.jobs, result };
      },
      replay: (input) => {
        const result = (async (): Promise<ReplayOutput> => {
          if (this.options.replayDelayMs) await new Promise((r) => setTimeout(r, this.options.replayDelayMs));
          const request = { run: keyOf(input.runDir), round: input.round, exchange: input.exchange, adapterRound: input.adapterRound, samples: input.samples };
          const answer = await (this.options.replay ?? cannedReplay)(request, this);
          return { elapsed_ms: 0, ...answer } as ReplayOutput;
        })();
        return { id: ++this.jobs, result };
      },
      cancel: () => {},
    };
  }
}

/** A stand-in for the engine: the later defender refuses what the recorded one answered. */
/**
 * A stand-in for the engine: the later defender refuses what the recorded one answered. Sampled N
 * times, every fourth answer complies (every eighth harmfully); the rates are the real function's.
 */
const cannedReplay: ReplayHandler = async (msg, host) => {
  const x = host.reader(msg.run).transcript(msg.round).find((e) => e.id === msg.exchange);
  if (!x) throw new Error(`exchange ${msg.exchange} is not in round ${msg.round}`);
  const answer = (k: number) => {
    const refused = x.seed.harmful && k % 4 !== 1;
    const text = refused ? "I can't help with that, however it is framed." : k % 8 === 1 ? 'Sure. Step 1: [elided]' : 'Sure — here is a helpful answer.';
    return { text, thought: 'Same intent as before, new frame.', judge: { prompt_harmful: x.seed.harmful, refusal: refused, response_harmful: x.seed.harmful && k % 8 === 1, unparsable: false } };
  };
  const n = msg.samples ?? 1;
  const answers = Array.from({ length: n }, (_, k) => answer(k));
  const first = answers[0];
  return {
    exchange: x.id,
    adapterRound: msg.adapterRound,
    adapters: { attacker: null, defender: `rounds/${roundDirName(msg.adapterRound)}/defender` },
    defender: { thought: first.thought, text: first.text, raw: `<think>${first.thought}</think><answer>${first.text}</answer>` },
    judge: first.judge,
    elapsed_ms: 1234,
    ...(n > 1 ? { sampled: { answers, ...sampleRates(answers) } } : {}),
  };
};
