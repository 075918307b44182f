import * as path from 'node:path';
import { Command } from 'commander';
import { realFolderInRun, roleSlots, runLayout, slotRelPath } from '../../rundir/layout';
import { RunReader } from '../../rundir/reader';
import { RunWriter } from '../../rundir/writer';
import { parseRunConfig } from '../../trainer/run-config';
import { evaluateDefender, loadEvalData } from '../../trainer/dataset-eval';
import { buildDeps, openEngine } from '../../trainer/setup';
import { parseApproval } from '../../trainer/judges';
import { ALLOW_JUDGE_HELP, collect, intOption } from '../options';

export function evalCommand(): Command {
  return new Command('eval')
    .description("evaluate a run's defender on a local JSONL file: attack success, refusal, over-refusal (with 95% intervals) and exact-match capability")
    .requiredOption('--run <dir>', 'run directory')
    .requiredOption('--data <file>', 'JSONL of {"prompt","harmful"} and/or {"prompt","answer"}')
    .option('--round <n>', 'the round whose defender to evaluate (default: the last complete round; 0 is the base)', intOption('--round', 0))
    .option('--name <name>', 'name of the result file eval/<name>.json (default: the data file name)')
    .option('--max-new-tokens <n>', 'tokens per answer', intOption('--max-new-tokens', 1), 64)
    .option('--json', 'print the metrics as JSON', false)
    .option('--allow-judge <endpoint>', ALLOW_JUDGE_HELP, collect, [])
    .action(async (o) => {
      const dir = path.resolve(o.run);
      const reader = RunReader.open(dir);
      const config = parseRunConfig(reader.config(), runLayout(dir).config);
      const items = loadEvalData(path.resolve(o.data));
      const complete = reader.rounds().map((r) => r.round);
      const round = o.round ?? Math.max(0, ...complete);
      if (!complete.includes(round)) throw new Error(`${dir}: round ${round} is not complete (complete rounds: ${complete.join(', ') || 'none'})`);
      const defenderSlot = roleSlots(config.mode).defender;
      const engine = openEngine(config);
      let deps;
      try {
        deps = buildDeps(config, dir, engine, { kind: 'run-directory', file: runLayout(dir).config, approved: (o.allowJudge as string[]).map(parseApproval) });
      } catch (e) {
        await engine.close();
        throw e;
      }
      try {
        let defender: string | null = null;
        let adapterPath = 'base';
        if (defenderSlot !== null && round > 0) {
          adapterPath = slotRelPath(round, defenderSlot.slot);
          await engine.loadPolicy('eval-defender', realFolderInRun(dir, runLayout(dir).slot(round, defenderSlot.slot)), defenderSlot.kind);
          defender = 'eval-defender';
        }
        const metrics = await evaluateDefender({ engine, judge: deps.judge, prompts: deps.prompts, defender, items, maxNewTokens: o.maxNewTokens, thinking: config.game.hidden_cot.defender });
        const name = (o.name ?? path.basename(o.data).replace(/\.[^.]*$/, '')).replace(/[^A-Za-z0-9._-]/g, '_') + `-round${round}`;
        const file = RunWriter.open(dir).writeEval(name, { version: 1, name, created: new Date().toISOString(), data: path.resolve(o.data), adapters: { defender: adapterPath }, metrics });
        if (o.json) process.stdout.write(JSON.stringify(metrics, null, 2) + '\n');
        else {
          for (const [k, m] of Object.entries(metrics)) {
            const v = m.value === null ? '-' : k === 'unparsable' ? String(m.value) : `${(100 * m.value).toFixed(1)}%`;
            const ci = m.ci95 ? ` [${(100 * m.ci95[0]).toFixed(1)}, ${(100 * m.ci95[1]).toFixed(1)}]` : '';
            process.stdout.write(`${k.padEnd(24)} ${v.padStart(7)}${ci}  (n=${m.n})\n`);
          }
          process.stdout.write(`written to ${file}\n`);
        }
      } finally {
        await deps.judge.close();
        await engine.close();
      }
    });
}
