/**
 * The replay job: plays a recorded exchange's attack against the defender of another round, with the
 * ONNX Runtime engine and the run's own base model, role prompts, sampling settings and judge. The
 * engine stays open between replays of the same model, with the last few defenders loaded.
 */
import * as fs from 'node:fs';
import { BUILTIN_SANDBOX, resolveModelDir } from '../engine/model/model-dir';
import { OrtEngine } from '../engine/ort-engine';
import { RunReader, realFolderInRun, roleSlots, runLayout, slotRelPath, type Exchange } from '../rundir';
import { parseRunConfig, type RunConfig } from '../trainer/run-config';
import { makeJudge } from '../trainer/judges';
import { rolePrompts } from '../trainer/role-prompts';
import { splitOutput } from '../trainer/thoughts';
import { JobError, type JobContext } from './job';
import { MAX_REPLAY_SAMPLES, type PanelJobOf, type ReplayOutput } from './protocol';
import { sampleRates } from './replay-rates';

interface OpenEngine {
  model: string;
  threads: number | undefined;
  engine: OrtEngine;
  /** Loaded defender policies by folder, most recent last. */
  policies: string[];
}

let opened: OpenEngine | null = null;

/** Closes the engine kept open between replays (when the worker shuts down). */
export async function closeReplayEngine(): Promise<void> {
  if (opened) await opened.engine.close().catch(() => {});
  opened = null;
}
const MAX_POLICIES = 4;

async function engineFor(model: string, threads: number | undefined): Promise<OrtEngine> {
  if (opened && opened.model === model && opened.threads === threads) return opened.engine;
  if (opened) await opened.engine.close();
  opened = null;
  const dir = resolveModelDir(model);
  if (!fs.existsSync(dir)) {
    throw new JobError(
      model === BUILTIN_SANDBOX
        ? `the built-in sandbox model is not installed (${dir} is missing); rebuild it with \`npx absp sandbox build\``
        : `the run's base model ${model} is not on this machine (${dir} does not exist); replay needs it locally`,
    );
  }
  opened = { model, threads, engine: OrtEngine.open(model, { threads }), policies: [] };
  return opened.engine;
}

/** The folder of a round that holds the defender in the run's mode, or null for the frozen base. */
function defenderFolder(runDir: string, config: RunConfig, round: number): { dir: string; kind: 'lora' | 'full'; rel: string } | null {
  const defender = roleSlots(config.mode).defender;
  if (!defender) return null;
  const dir = runLayout(runDir).slot(round, defender.slot);
  if (fs.existsSync(dir)) realFolderInRun(runDir, dir);
  return fs.existsSync(dir) ? { dir, kind: defender.kind, rel: slotRelPath(round, defender.slot) } : null;
}

function stableSeed(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

export async function replayJob(job: PanelJobOf<'replay'>, ctx: JobContext): Promise<ReplayOutput> {
  const { progress, checkCancelled } = ctx;
  const started = Date.now();
  const reader = RunReader.open(job.runDir);
  const rawConfig = reader.config();
  const configFile = runLayout(job.runDir).config;
  if (!rawConfig) throw new JobError(`${configFile} is missing or unreadable: the replay needs the run's config`);
  let config: RunConfig;
  try {
    config = parseRunConfig(rawConfig, configFile);
  } catch (e) {
    throw new JobError(`the run's config cannot be replayed by this version of ABSP Lab: ${(e as Error).message}`);
  }
  const exchange: Exchange | undefined = reader.transcript(job.round).find((x) => x.id === job.exchange);
  if (!exchange) throw new JobError(`exchange ${job.exchange} is not among the valid exchanges of round ${job.round}`);
  if (!reader.rounds().some((r) => r.round === job.adapterRound)) throw new JobError(`round ${job.adapterRound} of this run is not complete: it has no saved adapters yet`);
  const folder = defenderFolder(job.runDir, config, job.adapterRound);
  const total = exchange.turns.length + 2;
  progress(0, total);

  const engine = await engineFor(config.model, config.engine.kind === 'ort' ? config.engine.threads : undefined);
  checkCancelled();
  let policy: string | null = null;
  if (folder) {
    policy = `defender:${folder.dir}`;
    if (!opened!.policies.includes(policy)) {
      try {
        await engine.loadPolicy(policy, folder.dir, folder.kind);
      } catch (e) {
        throw new JobError(`${folder.rel} does not fit the run's base model ${config.model}: ${(e as Error).message}`);
      }
      opened!.policies.push(policy);
      while (opened!.policies.length > MAX_POLICIES) await engine.dropPolicy(opened!.policies.shift()!);
    }
  }
  progress(1, total);

  const prompts = rolePrompts(config.world.kind === 'sandbox' ? 'sandbox' : 'general', config.game.hidden_cot);
  const attackerTexts = exchange.turns.map((t) => t.attacker?.text ?? exchange.seed.prompt);
  const samples = Math.max(1, Math.min(MAX_REPLAY_SAMPLES, job.samples ?? 1));
  // Each sample plays the recorded attack turn by turn; later turns see that sample's own earlier
  // answers. All samples of a turn are generated in one batch. Seeds are fixed per exchange, turn and
  // sample, so a replay is reproducible, and its first sample is the single replay's answer.
  const answers: string[][] = Array.from({ length: samples }, () => []);
  let lasts = Array.from({ length: samples }, () => ({ thought: null as string | null, text: '', raw: '', wellFormed: false }));
  for (let t = 0; t < exchange.turns.length; t++) {
    checkCancelled();
    const requests = answers.map((history, k) => ({
      prompt: engine.encodeChat(prompts.defender(attackerTexts.slice(0, t + 1), history), true),
      policy,
      seed: stableSeed(k === 0 ? `${exchange.id}:${t}` : `${exchange.id}:${t}:${k}`),
    }));
    const gens = await engine.generate(requests, {
      maxNewTokens: config.game.max_new_tokens.defender,
      temperature: config.game.temperature,
      topP: config.game.top_p,
      stopTokens: engine.stopTokens(),
    });
    lasts = gens.map((gen) => {
      const raw = engine.decode(gen.tokens.slice(0, config.game.max_new_tokens.defender));
      const split = splitOutput(raw, config.game.hidden_cot.defender);
      return { thought: split.thought, text: split.answer, raw, wellFormed: split.wellFormed && gen.finish === 'stop' };
    });
    lasts.forEach((l, k) => answers[k].push(l.raw));
    progress(t + 2, total);
  }
  checkCancelled();

  let judges: ReplayOutput['judge'][] = lasts.map(() => null);
  let judgeError: string | undefined;
  try {
    const j = makeJudge(config, { kind: 'run-directory', file: configFile, approved: job.approvedJudges ?? [] });
    try {
      const lastTurn = exchange.turns[exchange.turns.length - 1];
      const verdicts = await j.judge(
        lasts.map((last) => ({
          seed: { id: exchange.seed.intent ?? exchange.id, prompt: exchange.seed.prompt, harmful: exchange.seed.harmful, intent: exchange.seed.intent, source: exchange.seed.source ?? 'replay' },
          attackerRaw: lastTurn.attacker ? lastTurn.attacker.raw : null,
          prompt: lastTurn.attacker ? lastTurn.attacker.text : exchange.seed.prompt,
          defenderRaw: last.raw,
          response: last.text,
          attackerWellFormed: exchange.attacked ? exchange.judge.well_formed?.attacker ?? null : null,
          defenderWellFormed: last.wellFormed,
        })),
      );
      judges = verdicts.map((v) => ({ prompt_harmful: v.promptHarmful, refusal: v.refusal, response_harmful: v.responseHarmful, unparsable: v.unparsable }));
    } finally {
      await j.close();
    }
  } catch (e) {
    judgeError = `the run's judge (${config.judge.kind}) could not label the replay: ${(e as Error).message}`;
  }
  const last = lasts[0];
  const judge = judges[0];
  const sampled = samples > 1 ? (() => {
    const all = lasts.map((l, k) => ({ text: l.text, thought: l.thought, judge: judges[k] }));
    return { answers: all, ...sampleRates(all) };
  })() : undefined;
  progress(total, total);
  return {
    exchange: exchange.id,
    adapterRound: job.adapterRound,
    adapters: { attacker: exchange.adapters.attacker ?? null, defender: folder ? folder.rel : 'base' },
    defender: { thought: last.thought, text: last.text, raw: last.raw },
    judge,
    ...(judgeError ? { judgeError } : {}),
    elapsed_ms: Date.now() - started,
    ...(sampled ? { sampled } : {}),
  };
}
