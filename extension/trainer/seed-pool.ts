/**
 * Seeds of the game: the sandbox's own, or a JSONL file of {"prompt": ..., "harmful": true|false}.
 * Each step draws a batch with the configured harmful share, reproducibly from (seed, step).
 */
import { gameSeeds } from '../sandbox/seeds';
import { jsonlMessage, loadJsonl } from '../util/jsonl-loader';
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
  return loadJsonl(file, {
    what: 'the seeds file',
    none: 'has no seeds',
    error: (f, line, problem) => new SeedsError(jsonlMessage(f, line, problem)),
    parse: (v, line, fail) => {
      const o = v as Record<string, unknown>;
      if (typeof o !== 'object' || o === null || Array.isArray(o)) fail('expected an object {"prompt": ..., "harmful": true|false}');
      if (typeof o.prompt !== 'string' || o.prompt.trim() === '') fail('"prompt" must be a non-empty string');
      if (typeof o.harmful !== 'boolean') fail('"harmful" must be true or false');
      return { id: `${line}`, prompt: o.prompt as string, harmful: o.harmful as boolean, intent: typeof o.intent === 'string' ? o.intent : undefined, source: file };
    },
  });
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
