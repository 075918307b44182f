import * as path from 'node:path';
import { Command } from 'commander';
import { runLayout } from '../../rundir/layout';
import { RunReader } from '../../rundir/reader';
import { RunWriter } from '../../rundir/writer';
import type { Crossplay, CrossplayPlayer } from '../../rundir/schema';
import { parseRunConfig } from '../../trainer/run-config';
import { loadRunPlayers } from '../../trainer/experiment';
import { PolicyName } from '../../engine/policy-engine';
import { buildDeps, openEngine } from '../../trainer/setup';
import { ALLOW_JUDGE_HELP, collect } from '../options';
import { parseApproval } from '../../trainer/judges';

export function crossplayCommand(): Command {
  return new Command('crossplay')
    .description('attack success of every saved attacker against every saved defender, within and across runs (same base model)')
    .argument('<runs...>', 'run directories; the matrix is written to the first one as crossplay.json')
    .option('--json', 'print the matrix as JSON', false)
    .option('--allow-judge <endpoint>', ALLOW_JUDGE_HELP, collect, [])
    .action(async (runs: string[], o) => {
      const dirs = runs.map((r) => path.resolve(r));
      const readers = dirs.map((d) => RunReader.open(d));
      const configs = readers.map((r, i) => parseRunConfig(r.config(), runLayout(dirs[i]).config));
      const base = configs[0].model;
      configs.forEach((c, i) => {
        if (c.model !== base) throw new Error(`${dirs[i]}: base model ${c.model} differs from ${base}; cross-play needs one base`);
      });
      const engine = openEngine(configs[0]);
      let deps;
      try {
        deps = buildDeps(configs[0], dirs[0], engine, { kind: 'run-directory', file: runLayout(dirs[0]).config, approved: (o.allowJudge as string[]).map(parseApproval) });
      } catch (e) {
        await engine.close();
        throw e;
      }
      try {
        const attackers: (CrossplayPlayer & { policy: PolicyName })[] = [];
        const defenders: (CrossplayPlayer & { policy: PolicyName })[] = [];
        const multi = dirs.length > 1;
        for (const [i, dir] of dirs.entries()) {
          const id = readers[i].info.id;
          const players = await loadRunPlayers(dir, configs[i].mode, engine, `run${i}-`);
          const label = (l: string) => (multi && l !== 'base' ? `${configs[i].mode}:${l}` : l);
          for (const a of players.attackers) if (i === 0 || a.policy !== null) attackers.push({ label: label(a.label), run: id, round: a.round, path: a.path, policy: a.policy });
          for (const d of players.defenders) if (i === 0 || d.policy !== null) defenders.push({ label: label(d.label), run: id, round: d.round, path: d.path, policy: d.policy });
        }
        if (!deps.evaluator) throw new Error('no evaluator for this world');
        const { cells, samples } = await deps.evaluator.crossplay(attackers.map((a) => ({ policy: a.policy })), defenders.map((d) => ({ policy: d.policy })));
        const strip = ({ policy: _p, ...rest }: CrossplayPlayer & { policy: PolicyName }) => rest;
        const result: Crossplay = {
          version: 1,
          method: deps.evaluator.method,
          attackers: attackers.map(strip),
          defenders: defenders.map(strip),
          asr: cells.map((r) => r.map((x) => x.asr)),
          ci95: cells.map((r) => r.map((x) => x.ci95)),
          samples,
        };
        RunWriter.open(dirs[0]).writeCrossplay(result);
        if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
        else {
          const w = Math.max(10, ...attackers.map((a) => a.label.length));
          process.stdout.write(`attack success (rows: attackers, columns: defenders), ${result.method}\n`);
          process.stdout.write(' '.repeat(w) + defenders.map((d) => d.label.padStart(14)).join('') + '\n');
          attackers.forEach((a, i) => process.stdout.write(a.label.padEnd(w) + cells[i].map((c) => `${(100 * c.asr).toFixed(1)}±${(100 * c.ci95).toFixed(1)}`.padStart(14)).join('') + '\n'));
          process.stdout.write(`written to ${runLayout(dirs[0]).crossplay}\n`);
        }
      } finally {
        await deps.judge.close();
        await engine.close();
      }
    });
}
