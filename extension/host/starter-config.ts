/**
 * "New config…": a starter run config. `absp run` reads strict JSON (no comments), so the file is plain
 * JSON with every commonly changed field written out, and the explanation of each field comes from
 * the JSON schema the extension contributes for `*.absp.json` (media/absp-config.schema.json): hover a
 * key in the editor to read what it means, and get completion and validation as you type. Pure.
 */
import type { EngineKind } from './settings';

export interface StarterOptions {
  name: string;
  engine: EngineKind;
  /** A seeds JSONL (e.g. exported annotated failures), relative to the config's folder. */
  seedsFile?: string;
}

/** A small experiment: minutes on a laptop CPU with the built-in sandbox model. */
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
    steps_per_round: 10,
    schedule: { kind: 'simultaneous' },
    game: {
      seeds_per_step: 32,
      harmful_fraction: 0.5,
      pass_through_fraction: 0.5,
      max_new_tokens: { attacker: 40, defender: 40 },
      reward: 'general-sum',
      reward_benign_helpfulness: true,
    },
    rl: { estimator: 'reinforce++', kl: { coef: 0.01 } },
    optimizer: { lr: { attacker: 0.001, defender: 0.002 } },
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
