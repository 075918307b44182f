/**
 * Seeds of the game: the sandbox's own, or a JSONL file of {"prompt": ..., "harmful": true|false}.
 * Each step draws a batch with the configured harmful share, reproducibly from (seed, step).
 */
import * as fs from 'node:fs';
import { gameSeeds } from '../sandbox/seeds';
import { Rng } from '../util/rng';

export interface GameSeed {
  id: string;
  prompt: string;
  harmful: boolean;
  /** The sandbox intent, when the seed comes from the sandbox (lets its exact judge check faithfulness). */
  intent?: string;
  source: string;
}

export class SeedsError extends Error {}

export function loadSeedsFile(file: string): GameSeed[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new SeedsError(`${file}: cannot read the seeds file (${(e as Error).message})`);
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const seeds: GameSeed[] = [];
  lines.forEach((line, i) => {
    const where = `${file}:${i + 1}`;
    if (line.trim() === '') throw new SeedsError(`${where}: empty line (every line must be a JSON object)`);
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new SeedsError(`${where}: invalid JSON (${(e as Error).message})`);
    }
    const o = v as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new SeedsError(`${where}: expected an object {"prompt": ..., "harmful": true|false}`);
    if (typeof o.prompt !== 'string' || o.prompt.trim() === '') throw new SeedsError(`${where}: "prompt" must be a non-empty string`);
    if (typeof o.harmful !== 'boolean') throw new SeedsError(`${where}: "harmful" must be true or false`);
    seeds.push({ id: `${i + 1}`, prompt: o.prompt, harmful: o.harmful, intent: typeof o.intent === 'string' ? o.intent : undefined, source: file });
  });
  if (seeds.length === 0) throw new SeedsError(`${file}: has no seeds`);
  return seeds;
}

export function sandboxSeeds(): GameSeed[] {
  return gameSeeds().map((s) => ({ id: s.id, prompt: s.prompt, harmful: s.harmful, intent: s.intent, source: 'sandbox' }));
}

export class SeedPool {
  readonly harmful: GameSeed[];
  readonly benign: GameSeed[];

  constructor(seeds: readonly GameSeed[]) {
    this.harmful = seeds.filter((s) => s.harmful);
    this.benign = seeds.filter((s) => !s.harmful);
  }

  /** `n` seeds, round(n · harmfulFraction) of them harmful, drawn with replacement. */
  draw(n: number, harmfulFraction: number, rng: Rng): GameSeed[] {
    let harmfulCount = Math.round(n * harmfulFraction);
    if (this.harmful.length === 0) harmfulCount = 0;
    if (this.benign.length === 0) harmfulCount = n;
    const out: GameSeed[] = [];
    for (let i = 0; i < harmfulCount; i++) out.push(rng.pick(this.harmful));
    for (let i = harmfulCount; i < n; i++) out.push(rng.pick(this.benign));
    return rng.shuffle(out);
  }
}
