/**
 * A self-play experiment from start (or resume) to finish, written into its run directory: rounds of
 * play-judge-train steps, every round's policies and optimiser state saved before its round.json, the
 * round measured (Nash gap, attack success, over-refusal, capability), and cross-play at the end.
 * A stopped or killed run resumes from its last complete round with nothing lost or duplicated.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { RunWriter } from '../rundir/writer';
import { completeRoundNumbers, realFolderInRun, roleSlots, runLayout, slotRelPath, type PolicySlot, type RoleSlots } from '../rundir/layout';
import type { Crossplay, Mode, Role } from '../rundir/schema';
import { RunConfig } from './run-config';
import { PolicyEngine, EngineError, OptimizerSettings, PolicyName } from '../engine/policy-engine';
import { Evaluator, Players } from './round-evaluator';
import { FingerprintMismatchError } from './fingerprints';
import { GameSettings, PlayedExchange, playStep } from './game';
import { Judge, JudgeError } from './judges/judge';
import { RolePrompts } from './role-prompts';
import { AdaptivePhase, phaseName, rolesAt } from './schedule';
import { RunReader } from '../rundir/reader';
import { SeedPool } from './seed-pool';
import { stepMetrics } from './step-metrics';
import { successfulAttacks } from './attack-replay';
import { EstimatorSettings, buildTrainingBatch, helpfulRows } from './training-batch';
import { HelpfulExample } from './helpful-data';
import { Rng } from '../util/rng';

/** The engine policy that plays a role (null: the frozen base); policies are named as their slots' trained names. */
function policyOf(slot: PolicySlot | null): PolicyName {
  return slot ? slot.name : null;
}

export interface ExperimentDeps {
  engine: PolicyEngine;
  judge: Judge;
  evaluator: Evaluator | null;
  prompts: RolePrompts;
  pool: SeedPool;
  /** Benign helpful answers for the defender's auxiliary supervised loss (empty: none). */
  helpful: readonly HelpfulExample[];
}

export interface ExperimentOptions {
  config: RunConfig;
  deps: ExperimentDeps;
  /** Create a new run in config.runs_dir, or resume this run directory. */
  resumeDir?: string;
  runId?: string;
  log?: (line: string) => void;
  onStep?: (p: { round: number; step: number; totalSteps: number; metrics: Record<string, number | null> }) => void;
  onRound?: (p: { round: number; metrics: Record<string, number | null> }) => void;
  /** Polled between steps; true stops the run cleanly (status stopped, resumable). */
  shouldStop?: () => boolean;
}

export interface ExperimentResult {
  dir: string;
  status: 'completed' | 'stopped';
  rounds: { round: number; metrics: Record<string, number | null> }[];
}

export function gameSettings(c: RunConfig): GameSettings {
  return {
    seedsPerStep: c.game.seeds_per_step,
    groupSize: c.rl.estimator === 'grpo' ? c.rl.group_size : 1,
    harmfulFraction: c.game.harmful_fraction,
    passThroughFraction: c.game.pass_through_fraction,
    turns: c.game.turns,
    thinking: c.game.hidden_cot,
    maxNewTokens: c.game.max_new_tokens,
    temperature: c.game.temperature,
    topP: c.game.top_p,
    rewards: { kind: c.game.reward, rewardBenignHelpfulness: c.game.reward_benign_helpfulness },
    attackerNovelty: c.rl.novelty_bonus,
  };
}

export function estimatorSettings(c: RunConfig): EstimatorSettings {
  return { estimator: c.rl.estimator, klCoef: c.rl.kl.coef, klEstimator: c.rl.kl.estimator, klInReward: c.rl.kl.in_reward, gamma: c.rl.gamma, entropyBonus: c.rl.entropy_bonus, dropTiedGroups: c.rl.drop_tied_groups };
}

export function optimizerSettings(c: RunConfig, policy: string): OptimizerSettings {
  const lr = policy === 'attacker' ? c.optimizer.lr.attacker : policy === 'defender' ? c.optimizer.lr.defender : c.optimizer.lr.shared;
  return { kind: c.optimizer.kind, lr, weightDecay: c.optimizer.weight_decay, clipNorm: c.optimizer.clip_norm, warmupSteps: c.optimizer.warmup_steps };
}

function configHash(c: RunConfig): string {
  return crypto.createHash('sha256').update(JSON.stringify(c)).digest('hex').slice(0, 16);
}

export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResult> {
  const { config: c, deps } = o;
  const { engine } = deps;
  const log = o.log ?? (() => {});
  const roles = roleSlots(c.mode);
  const info = await engine.ready();
  const writer = o.resumeDir
    ? RunWriter.resume(o.resumeDir)
    : RunWriter.create(path.resolve(c.runs_dir), {
        id: o.runId,
        name: c.name,
        mode: c.mode,
        engine: info.name,
        device: `${info.device ?? 'cpu'}${(info.worldSize ?? 1) > 1 ? ` ×${info.worldSize}${info.fsdp ? ' FSDP' : ''}` : ''}`,
        dtype: info.dtype,
        base_model: c.model,
        rounds_planned: c.rounds,
        roles: ['attacker', 'defender'],
        config: c as unknown as Record<string, unknown>,
      });
  const say = (line: string) => {
    log(line);
    writer.log(line);
  };
  const players: Players = { attacker: policyOf(roles.attacker), defender: policyOf(roles.defender) };
  const rounds: ExperimentResult['rounds'] = [];
  let round = 0;
  let step = 0;
  /** The trainer's current fingerprint of each trained policy: every rollout must have been sampled by it. */
  const fingerprints = new Map<string, string>();
  const adaptive = c.schedule.kind === 'adaptive'
    ? new AdaptivePhase({ kind: 'adaptive', attackerUntil: c.schedule.attacker_until, defenderUntil: c.schedule.defender_until, maxSteps: c.schedule.max_steps, first: c.schedule.first })
    : null;
  /** Where the run is, for the reason a failure records ("in round 2, step 13", "resuming from round 1"). */
  let where = 'before training';
  try {
    const last = writer.lastCompleteRound();
    if (last >= 0) {
      where = `while resuming from round ${last}`;
      const layout = runLayout(writer.dir);
      const recorded = writer.roundInfo(last)?.fingerprints ?? {};
      for (const t of roles.trained) {
        const dir = realFolderInRun(writer.dir, layout.slot(last, t.slot));
        await engine.loadPolicy(t.name, dir, t.kind);
        await engine.loadOptimizer(t.name, realFolderInRun(writer.dir, layout.optimizer(last)));
        const fp = await engine.fingerprint(t.name);
        const want = recorded[t.slot];
        if (want !== undefined && fp !== want) {
          throw new FingerprintMismatchError(`${dir}: its weights (fingerprint ${fp}) are not those round ${last} recorded (${want}); the files were changed or damaged after they were saved`);
        }
        fingerprints.set(t.name, fp);
      }
      round = last;
      step = last * c.steps_per_round;
      if (adaptive) {
        // The schedule's state is a function of the attack success recorded after each step.
        const reader = RunReader.open(writer.dir);
        const valid = reader.validity();
        for (const e of reader.events()) if (e.type === 'step' && valid(e) && e.step <= step) adaptive.record(e.metrics['asr/current_attacker'] ?? null);
      }
      say(`resuming ${writer.dir} from round ${last} (attempt ${writer.attempt})`);
    } else {
      where = 'before training (round 0)';
      writer.event({ type: 'start', round: 0, config_hash: configHash(c) });
      for (const t of roles.trained) {
        await engine.createPolicy(t.name, { kind: t.kind, rank: c.lora.rank, alpha: c.lora.alpha, targets: c.lora.targets, seed: c.seed + (t.name === 'defender' ? 1 : 0) });
        fingerprints.set(t.name, await engine.fingerprint(t.name));
      }
      await completeRound(0, null, 0);
      say(`run ${writer.dir}: ${c.mode}, ${c.rounds} rounds of ${c.steps_per_round} steps`);
    }

    async function completeRound(r: number, steps: [number, number] | null, exchanges: number): Promise<void> {
      const saved: Record<string, string> = {};
      where = r === 0 ? 'while measuring the initial policies (round 0)' : `while saving and measuring round ${r}`;
      for (const t of roles.trained) {
        saved[t.slot] = await engine.savePolicy(t.name, writer.slotDir(r, t.slot));
        if (saved[t.slot] !== fingerprints.get(t.name)) {
          throw new FingerprintMismatchError(`${writer.slotDir(r, t.slot)}: the saved ${t.name} (fingerprint ${saved[t.slot]}) is not the policy the trainer last updated (${fingerprints.get(t.name)})`);
        }
        await engine.saveOptimizer(t.name, writer.optimizerDir(r));
      }
      const measured = deps.evaluator && c.evaluation.nash_gap ? await deps.evaluator.measureRound(players, r) : null;
      // Measured, not computed from the config: what the engine actually trains.
      const trainable = roles.trained.reduce((n, t) => n + engine.policyParameters(t.name), 0);
      const metrics = { ...(measured?.metrics ?? {}), 'parameters/trainable': trainable };
      const ng = measured?.nashGap;
      writer.completeRound(r, {
        steps,
        roles: roles.trained.map((t) => t.name),
        metrics,
        exchanges,
        fingerprints: saved,
        nashgap: ng
          ? { method: ng.method, nash_gap: ng.nashGap, defender_exploitability: ng.defenderExploitability, attacker_gap: ng.attackerGap, best_response_asr: ng.bestResponseAsr, per_seed: ng.perSeed, budget: ng.budget }
          : undefined,
      });
      rounds.push({ round: r, metrics });
      o.onRound?.({ round: r, metrics });
      if (r > 0 || ng) say(`round ${r}: ${Object.entries(metrics).map(([k, v]) => `${k}=${v === null ? '-' : v.toFixed(3)}`).join(' ')}`);
    }

    // Fictitious play: past attackers, loaded from their saved rounds when first drawn.
    const pastPaths = new Map<string, string>();
    const attackerSlot = roles.attacker && roles.trained.includes(roles.attacker) ? roles.attacker : null;
    async function pastAttacker(globalStep: number, currentRound: number): Promise<{ policy: PolicyName; share: number } | null> {
      if (c.rl.past_attackers === 0 || !attackerSlot || attackerSlot.kind !== 'lora') return null;
      const r = Math.floor(new Rng(c.seed, 800_000 + globalStep).uniform() * currentRound);
      const name = `past-attacker-r${r}`;
      if (!pastPaths.has(name)) {
        await engine.loadPolicy(name, runLayout(writer.dir).slot(r, attackerSlot.slot), 'lora');
        fingerprints.set(name, await engine.fingerprint(name));
        pastPaths.set(name, slotRelPath(r, attackerSlot.slot));
      }
      return { policy: name, share: c.rl.past_attackers };
    }

    const total = c.rounds * c.steps_per_round;
    const settings = gameSettings(c);
    for (round = round + 1; round <= c.rounds; round++) {
      const firstStep = step + 1;
      // Read back from the transcripts of the complete rounds, so a resumed run replays the same attacks.
      const replay = c.rl.replay_attacks > 0 ? { seeds: successfulAttacks(RunReader.open(writer.dir), round - 1), share: c.rl.replay_attacks } : null;
      let exchangesInRound = 0;
      for (let s = 0; s < c.steps_per_round; s++, step++) {
        if (o.shouldStop?.()) {
          writer.setStatus('stopped', `stopped by the user during round ${round}; resume continues from round ${round - 1}`);
          say(`stopped during round ${round}`);
          return { dir: writer.dir, status: 'stopped', rounds };
        }
        const started = Date.now();
        where = `in round ${round}, step ${step + 1}`;
        const trainingRoles = adaptive
          ? adaptive.roles
          : rolesAt(c.schedule.kind === 'alternating' ? { kind: 'alternating', attackerSteps: c.schedule.attacker_steps, defenderSteps: c.schedule.defender_steps, first: c.schedule.first } : { kind: 'simultaneous' }, c.mode, step);
        const opponent = await pastAttacker(step + 1, round);
        const play = await playStep({ engine, judge: deps.judge, prompts: deps.prompts, pool: deps.pool, settings, policies: players, opponent, replay, seed: c.seed, step: step + 1, fingerprints });
        for (const w of play.warnings.slice(0, 5)) writer.event({ type: 'log', round, level: 'warn', message: w });
        if (play.warnings.length > 0) say(`step ${step + 1}: ${play.warnings.length} prompt(s) left less than their token budget in the model's context; ${play.warnings[0]}`);
        checkJudgeFailures(play.exchanges, c);
        writeExchanges(writer, play.exchanges, round, step + 1, roles, pastPaths);
        exchangesInRound += play.exchanges.length;
        const policyOfRole = (role: Role): PolicyName => players[role];
        const batch = await buildTrainingBatch(engine, play.exchanges, trainingRoles, policyOfRole, estimatorSettings(c));
        const defenderPolicy = players.defender;
        if (trainingRoles.includes('defender') && defenderPolicy !== null && deps.helpful.length > 0 && c.rl.helpful_sft.coef > 0) {
          const rng = new Rng(c.seed, 500_000 + step);
          const examples = Array.from({ length: c.rl.helpful_sft.batch_size }, () => rng.pick(deps.helpful));
          batch.samples.push(...(await helpfulRows(engine, deps.prompts, examples, defenderPolicy, c.rl.helpful_sft.coef)));
        }
        const optimizers: Record<string, OptimizerSettings> = {};
        for (const t of roles.trained) optimizers[t.name] = optimizerSettings(c, t.name);
        const report = batch.samples.length ? await engine.trainStep(batch.samples, { clipEps: c.rl.clip_eps, klK1: batch.klK1, klK3: batch.klK3, optimizers }) : null;
        for (const name of Object.keys(report?.policies ?? {})) fingerprints.set(name, report!.policies[name].fingerprint ?? (await engine.fingerprint(name)));
        const seconds = (Date.now() - started) / 1000;
        const own = play.exchanges.filter((e) => e.attacked && e.seed.harmful && e.rewards !== null && e.attackerPolicy === players.attacker);
        const ownSuccess = own.length ? own.filter((e) => e.verdict.responseHarmful === true).length / own.length : null;
        adaptive?.record(ownSuccess);
        const metrics: Record<string, number | null> = {
          ...stepMetrics(play.exchanges, (t) => engine.encode(t)),
          'asr/current_attacker': ownSuccess,
          'kl/attacker': batch.kl.attacker ?? null,
          'kl/defender': batch.kl.defender ?? null,
          tokens_per_s: (play.generatedTokens + (report?.tokens ?? 0)) / Math.max(seconds, 1e-3),
        };
        for (const t of roles.trained) {
          const p = report?.policies[t.name];
          const label = t.name === 'shared' ? 'loss/shared' : `loss/${t.name}`;
          metrics[label] = p ? (Number.isFinite(p.loss) ? p.loss : null) : null;
          if (p?.skipped) say(`step ${step + 1}: ${t.name} update skipped (non-finite loss or gradient)`);
        }
        writer.event({ type: 'step', round, step: step + 1, phase: phaseName(trainingRoles), metrics });
        o.onStep?.({ round, step: step + 1, totalSteps: total, metrics });
      }
      await completeRound(round, [firstStep, step], exchangesInRound);
    }

    if (c.evaluation.crossplay && deps.evaluator) {
      where = 'in the cross-play after the last round';
      say('cross-play: every saved attacker against every saved defender');
      writer.writeCrossplay(await crossplayWithinRun(writer.dir, c, engine, deps.evaluator));
    }
    writer.setStatus('completed');
    return { dir: writer.dir, status: 'completed', rounds };
  } catch (e) {
    const err = e as Error;
    const resumable = e instanceof EngineError || e instanceof JudgeError || !(e instanceof TypeError || e instanceof RangeError);
    writer.setStatus(resumable ? 'paused' : 'failed', `${err.message} (${where}); completed rounds are kept${resumable ? '; resume with absp run --resume' : ''}`);
    say(`${resumable ? 'paused' : 'failed'} ${where}: ${err.message}`);
    throw e;
  }
}

function checkJudgeFailures(exchanges: readonly PlayedExchange[], c: RunConfig): void {
  if (c.judge.kind !== 'http') return;
  const unparsable = exchanges.filter((e) => e.verdict.unparsable).length;
  if (exchanges.length > 0 && unparsable / exchanges.length > c.judge.max_failure_rate) {
    throw new JudgeError(`the judge returned unparsable labels for ${unparsable} of ${exchanges.length} exchanges (more than judge.max_failure_rate ${c.judge.max_failure_rate})`);
  }
}

function writeExchanges(writer: RunWriter, exchanges: readonly PlayedExchange[], round: number, step: number, roles: RoleSlots, pastPaths: ReadonlyMap<string, string>): void {
  // The weights that played this round are those saved at the end of the previous round; a past
  // attacker's are those of the round it was saved in.
  const adapterPath = (policy: PolicyName) => {
    if (policy === null) return 'base';
    const past = pastPaths.get(policy);
    if (past) return past;
    const slot = roles.trained.find((t) => t.name === policy)?.slot ?? policy;
    return slotRelPath(round - 1, slot);
  };
  for (const e of exchanges) {
    writer.exchange({
      id: `r${String(round).padStart(4, '0')}-s${String(step).padStart(6, '0')}-${String(e.index).padStart(3, '0')}`,
      round,
      step,
      seed: { prompt: e.seed.prompt, harmful: e.seed.harmful, source: e.seed.source, ...(e.seed.intent ? { intent: e.seed.intent } : {}) },
      group: e.group,
      attacked: e.attacked,
      turns: e.turns.map((t) => ({
        attacker: t.attacker ? { thought: t.attacker.thought, text: t.attacker.text, raw: t.attacker.raw } : null,
        defender: { thought: t.defender.thought, text: t.defender.text, raw: t.defender.raw },
      })),
      judge: {
        prompt_harmful: e.verdict.promptHarmful,
        refusal: e.verdict.refusal,
        response_harmful: e.verdict.responseHarmful,
        faithful: e.verdict.faithful,
        well_formed: { attacker: e.verdict.wellFormed.attacker, defender: e.verdict.wellFormed.defender },
        unparsable: e.verdict.unparsable,
      },
      rewards: { attacker: e.rewards?.attacker ?? null, defender: e.rewards?.defender ?? null, components: e.rewards?.components },
      adapters: { attacker: e.attacked ? adapterPath(e.attackerPolicy) : null, defender: adapterPath(policyOf(roles.defender)) },
      fingerprints: {
        attacker: e.generations.find((g) => g.role === 'attacker')?.fingerprint ?? null,
        defender: e.generations.find((g) => g.role === 'defender')?.fingerprint ?? null,
      },
    });
  }
}

/** Loads a run's saved attackers/defenders (base + every complete round) as engine policies. */
export async function loadRunPlayers(
  runDir: string,
  mode: Mode,
  engine: PolicyEngine,
  prefix: string,
): Promise<{ attackers: { label: string; round: number | null; path: string; policy: PolicyName }[]; defenders: { label: string; round: number | null; path: string; policy: PolicyName }[] }> {
  const roles = roleSlots(mode);
  const layout = runLayout(runDir);
  const attackers: { label: string; round: number | null; path: string; policy: PolicyName }[] = [{ label: 'base', round: null, path: 'base', policy: null }];
  const defenders = [...attackers];
  for (const r of completeRoundNumbers(runDir).filter((n) => n > 0)) {
    for (const [role, list] of [['attacker', attackers], ['defender', defenders]] as const) {
      const player = roles[role];
      if (player === null) continue;
      const name = `${prefix}${role}-r${r}`;
      await engine.loadPolicy(name, realFolderInRun(runDir, layout.slot(r, player.slot)), player.kind);
      list.push({ label: `r${r}`, round: r, path: slotRelPath(r, player.slot), policy: name });
    }
  }
  return { attackers, defenders };
}

async function crossplayWithinRun(runDir: string, c: RunConfig, engine: PolicyEngine, evaluator: Evaluator): Promise<Crossplay> {
  const runId = path.basename(runDir);
  const players = await loadRunPlayers(runDir, c.mode, engine, 'xp-');
  // Round 0's adapters start at zero (PEFT's initialisation), so the base plays exactly as round 0 did.
  const asRound0 = (p: { policy: PolicyName; round: number | null }) => (p.policy === null ? { ...p, round: 0 } : p);
  const { cells, samples } = await evaluator.crossplay(players.attackers.map(asRound0), players.defenders.map(asRound0));
  for (const p of [...players.attackers, ...players.defenders]) if (p.policy) await engine.dropPolicy(p.policy);
  return {
    version: 1,
    method: evaluator.method,
    attackers: players.attackers.map((a) => ({ label: a.label, run: runId, round: a.round, path: a.path })),
    defenders: players.defenders.map((d) => ({ label: d.label, run: runId, round: d.round, path: d.path })),
    asr: cells.map((row) => row.map((x) => x.asr)),
    ci95: cells.map((row) => row.map((x) => x.ci95)),
    samples,
  };
}
