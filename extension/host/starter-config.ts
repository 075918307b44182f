/**
 * "New config…": a starter run config. `absp run` reads strict JSON (no comments), so the file is plain
 * JSON with every commonly changed field written out, and the explanation of each field comes from
 * the JSON schema the extension contributes for `*.absp.json` (media/absp-config.schema.json): hover a
 * key in the editor to read what it means, and get completion and validation as you type. Also what
 * the Start Run picker says of the built-in experiment, and where exported seeds go. Pure Node.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EngineKind } from './settings';

export interface StarterOptions {
  name: string;
  engine: EngineKind;
  /** A seeds JSONL (e.g. exported annotated failures), relative to the config's folder. */
  seedsFile?: string;
}

/**
 * A small experiment: minutes on a laptop CPU with the built-in sandbox model. Its training fields are
 * the defaults, the method README measures over seeds (a test keeps them equal), written out to edit.
 */
export function starterConfig(o: StarterOptions): Record<string, unknown> {
  // No python: the torch engine runs the abspLab.pythonPath user setting's or the set-up environment's.
  const engine = o.engine === 'torch' ? { kind: 'torch', device: 'cuda', dtype: 'bfloat16' } : { kind: 'ort' };
  return {
    name: o.name,
    model: 'builtin:sandbox',
    engine,
    world: o.seedsFile ? { kind: 'seeds', file: o.seedsFile, include_sandbox: true } : { kind: 'sandbox' },
    judge: { kind: 'sandbox' },
    mode: 'bipolicy',
    rounds: 4,
    steps_per_round: 15,
    schedule: { kind: 'simultaneous' },
    game: {
      seeds_per_step: 16,
      harmful_fraction: 0.6,
      pass_through_fraction: 0.25,
      max_new_tokens: { attacker: 40, defender: 40 },
      reward: 'general-sum',
      reward_benign_helpfulness: true,
    },
    rl: { estimator: 'grpo', group_size: 4, kl: { coef: 0.01 }, replay_attacks: 1 },
    optimizer: { lr: { attacker: 0.0035, defender: 0.003 } },
    lora: { rank: 8, alpha: 16 },
    evaluation: { nash_gap: true, crossplay: true },
    baselines: ['shared-lora'],
  };
}

export function starterConfigText(o: StarterOptions): string {
  return `${JSON.stringify(starterConfig(o), null, 2)}\n`;
}

/** A name for a config file that does not clash with the files already there. */
export function freeConfigName(existing: ReadonlySet<string>, stem = 'experiment'): string {
  for (let i = 1; ; i++) {
    const name = `${stem}${i === 1 ? '' : `-${i}`}.absp.json`;
    if (!existing.has(name)) return name;
  }
}

/** A run of this machine's runs folder, as far as the built-in experiment's picker entry needs it. */
export interface PastRun {
  name: string;
  status: string | null;
  created: string;
  updated: string;
}

/** "4 min 09 s", "52 s", "1 h 03 min". */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/**
 * The picker entry of the built-in experiment: what it runs (the main mode, then each baseline at the
 * same budget, on the shipped sandbox model), its size, and how long it took the last time it ran to
 * completion on this machine (its runs are named after the config: `name`, `name-<baseline mode>`).
 */
export function builtinExperimentEntry(
  c: { name: string; mode: string; rounds: number; steps_per_round: number; baselines: readonly string[]; evaluation: { nash_gap: boolean; crossplay: boolean } },
  engine: string,
  past: readonly PastRun[],
): { description: string; detail: string } {
  const baselines = c.baselines.filter((m) => m !== c.mode);
  const modeName = (m: string) => (m === 'bipolicy' ? 'ABSP (bipolicy)' : m);
  const runs = [c.mode, ...baselines];
  const description = `${modeName(c.mode)}${baselines.length ? `, then ${baselines.join(' and ')} at the same budget` : ''} · sandbox model · engine ${engine}`;
  const size = `${runs.length} run${runs.length === 1 ? '' : 's'} of ${c.rounds} rounds × ${c.steps_per_round} steps`;
  const measured = [c.evaluation.nash_gap ? 'the Nash gap measured every round' : null, c.evaluation.crossplay ? 'cross-play at the end' : null].filter(Boolean).join(', ');
  const completed = (name: string) => past.filter((r) => r.name === name && r.status === 'completed').sort((a, b) => b.created.localeCompare(a.created));
  const main = completed(c.name)[0];
  let took: string;
  if (main) {
    // The job's baselines start when its main run ends; take the last of them that followed it.
    const ends = [Date.parse(main.updated)];
    let complete = true;
    for (const m of baselines) {
      const b = completed(`${c.name}-${m}`).find((r) => Date.parse(r.created) >= Date.parse(main.updated) - 60_000);
      if (b) ends.push(Date.parse(b.updated));
      else complete = false;
    }
    const ms = Math.max(...ends) - Date.parse(main.created);
    took = complete ? `last time here: ${formatDuration(ms)} for ${runs.length === 1 ? 'the run' : `all ${runs.length} runs`}` : `last time here: ${formatDuration(Date.parse(main.updated) - Date.parse(main.created))} for the ${c.mode} run alone`;
  } else {
    took = 'minutes on a laptop CPU (it has not run to completion on this machine yet)';
  }
  return { description, detail: `${size}${measured ? `; ${measured}` : ''} · ${took}` };
}

/**
 * Where exported seeds are offered to go: the workspace's seeds/ folder when there is one, else the
 * workspace folder, else beside the run — a folder that exists (the save dialog of some platforms
 * refuses a default in a folder that does not).
 */
export function seedsFolder(workspace: string | undefined, runDir: string): string {
  if (workspace) {
    const seeds = path.join(workspace, 'seeds');
    return fs.existsSync(seeds) && fs.statSync(seeds).isDirectory() ? seeds : workspace;
  }
  return path.dirname(runDir);
}
