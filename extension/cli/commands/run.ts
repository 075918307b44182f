import * as path from 'node:path';
import { Command } from 'commander';
import { RunConfig, defaultRunConfig, loadRunConfig, parseRunConfig, parseSeedList, resolveConfigPaths } from '../../trainer/run-config';
import { parseApproval, type ConfigOrigin } from '../../trainer/judges';
import { ALLOW_JUDGE_HELP, collect } from '../options';
import { runWithOwnEngine } from '../../trainer/setup';
import { formatSummary, formatSweepSummary, summarizeRun, TrainingSummary } from '../../trainer/summary';
import { runSweep, sweepModes } from '../../trainer/sweep';
import { runLayout } from '../../rundir/layout';
import { RunReader } from '../../rundir/reader';
import { SweepReader, isSweepDir } from '../../rundir/sweep';
import { progressBar } from '../progress';

/**
 * The seeds of the main job (`absp run` with no config). One seed, with its baseline, fits the
 * 10-minute budget on 2 cores; two do not reliably. Its output says so and points to the sweep.
 */
export const MAIN_JOB_SEEDS = [1];

/** What the main job's result rests on, printed under its table. */
export function mainJobNote(seeds: readonly number[]): string {
  const which = seeds.length === 1 ? `one seed (seed ${seeds[0]})` : `${seeds.length} seeds (${seeds.join(', ')})`;
  return (
    `This result rests on ${which}: a single trajectory, which can differ between CPUs and thread counts ` +
    `(ONNX Runtime rounds differently and one flipped sampled token sends a run elsewhere). A claim needs ` +
    `several seeds: absp run --seeds 1-8 runs the sweep whose result README reports.`
  );
}

/** First Ctrl-C stops after the current step (resumable); a second one exits at once. */
function installStopHandler(): { stopRequested: () => boolean; dispose: () => void } {
  let requested = false;
  const handler = () => {
    if (requested) process.exit(130);
    requested = true;
    process.stderr.write('\nabsp: stopping after the current step (Ctrl-C again to quit now; resume with absp run --resume)\n');
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return { stopRequested: () => requested, dispose: () => (process.off('SIGINT', handler), process.off('SIGTERM', handler)) };
}

async function runOne(
  config: RunConfig,
  configDir: string,
  target: { resumeDir?: string; runId?: string },
  quiet: boolean,
  stop: () => boolean,
  origin: ConfigOrigin,
  title: string = config.mode,
): Promise<{ dir: string; status: 'completed' | 'stopped' }> {
  const bar = quiet ? null : progressBar(config.rounds * config.steps_per_round, title.padEnd(12), '{bar} {value}/{total} steps {detail}');
  try {
    const result = await runWithOwnEngine(
      config,
      configDir,
      {
        resumeDir: target.resumeDir,
        runId: target.runId,
        log: quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
        shouldStop: stop,
        onStep: (p) => bar?.update(p.step, { detail: `round ${p.round}  asr ${(p.metrics.asr ?? NaN).toFixed(2)}  over-refusal ${(p.metrics.over_refusal ?? NaN).toFixed(2)}` }),
      },
      origin,
    );
    return { dir: result.dir, status: result.status };
  } finally {
    bar?.stop();
  }
}

export function runCommand(): Command {
  return new Command('run')
    .description('run a self-play experiment (default: Anchored Bipolicy Self-Play on the built-in sandbox) and print a before/after table')
    .argument('[config]', 'run config JSON (docs/config.md); omitted: the built-in sandbox experiment')
    .option('--resume <dir>', 'continue a stopped or killed run from its last complete round')
    .option('--runs-dir <dir>', 'folder for run directories (overrides the config)')
    .option('--seeds <list>', 'run the experiment and its baselines once per seed, as one sweep (e.g. 1-8 or 1,3,5)')
    .option('--no-baselines', 'skip the baseline runs the config asks for')
    .option('--json', 'print the summary as JSON', false)
    .option('--quiet', 'no progress output', false)
    .option('--allow-judge <endpoint>', ALLOW_JUDGE_HELP, collect, [])
    .action(async (configFile: string | undefined, o) => {
      const stop = installStopHandler();
      try {
        const sweepLog = o.quiet ? undefined : (line: string) => process.stderr.write(`${line}\n`);
        if (o.resume && isSweepDir(path.resolve(o.resume))) {
          // A sweep resumes as a whole: completed runs are kept, an unfinished one resumes, the rest start.
          const sweepDir = path.resolve(o.resume);
          const reader = SweepReader.open(sweepDir);
          const saved = reader.config();
          if (!saved) throw new Error(`${reader.layout.config}: missing or damaged; cannot resume the sweep without its config`);
          const config = parseRunConfig(saved, reader.layout.config);
          const result = await runSweep({
            config,
            seeds: reader.info.seeds,
            modes: reader.info.modes,
            resumeDir: sweepDir,
            log: sweepLog,
            // The sweep folder's config is someone else's until approved, like a run directory's.
            runOne: (c, target, run) => runOne(c, sweepDir, target, o.quiet, stop.stopRequested, { kind: 'run-directory', file: reader.layout.config, approved: (o.allowJudge as string[]).map(parseApproval) }, `seed ${run.seed} ${run.mode}`),
          });
          process.stdout.write(o.json ? JSON.stringify(result.summary, null, 2) + '\n' : '\n' + formatSweepSummary(result.summary, result.dir) + '\n');
          return;
        }
        let config: RunConfig;
        let configDir = process.cwd();
        let resumeDir: string | undefined;
        let origin: ConfigOrigin = { kind: 'user' };
        if (o.resume) {
          resumeDir = path.resolve(o.resume);
          const saved = RunReader.open(resumeDir).config();
          const configJson = runLayout(resumeDir).config;
          if (!saved) throw new Error(`${configJson}: missing; cannot resume without the run's config`);
          config = parseRunConfig(saved, configJson);
          // The saved config is the run directory's: its judge endpoint needs the user's approval.
          origin = { kind: 'run-directory', file: configJson, approved: (o.allowJudge as string[]).map(parseApproval) };
        } else if (configFile) {
          config = loadRunConfig(configFile);
          configDir = path.dirname(path.resolve(configFile));
        } else {
          config = defaultRunConfig();
        }
        config = resolveConfigPaths(config, configDir);
        if (o.runsDir) config = { ...config, runs_dir: path.resolve(o.runsDir) };

        const mainJob = !resumeDir && !o.seeds && !configFile;
        const seeds = resumeDir ? undefined : o.seeds ? parseSeedList(o.seeds) : (config.seeds ?? (mainJob ? MAIN_JOB_SEEDS : undefined));
        if (seeds) {
          const result = await runSweep({
            config,
            seeds,
            modes: o.baselines === false ? [config.mode] : sweepModes(config),
            log: sweepLog,
            runOne: (c, target, run) => runOne(c, configDir, target, o.quiet, stop.stopRequested, origin, `seed ${run.seed} ${run.mode}`),
          });
          const note = mainJob && seeds.length < 3 ? `\n${mainJobNote(seeds)}\n` : '';
          process.stdout.write(o.json ? JSON.stringify(result.summary, null, 2) + '\n' : '\n' + formatSweepSummary(result.summary, result.dir) + '\n' + note);
          return;
        }

        const summaries: TrainingSummary[] = [];
        const main = await runOne(config, configDir, { resumeDir }, o.quiet, stop.stopRequested, origin);
        summaries.push(summarizeRun(main.dir));
        if (main.status === 'completed' && o.baselines !== false && !resumeDir) {
          for (const mode of config.baselines.filter((m) => m !== config.mode)) {
            const baseline = await runOne({ ...config, mode, name: `${config.name}-${mode}`, baselines: [] }, configDir, {}, o.quiet, stop.stopRequested, origin);
            summaries.push(summarizeRun(baseline.dir));
            if (baseline.status !== 'completed') break;
          }
        }
        process.stdout.write(o.json ? JSON.stringify(summaries, null, 2) + '\n' : '\n' + formatSummary(summaries) + '\n');
      } finally {
        stop.dispose();
      }
    });
}
