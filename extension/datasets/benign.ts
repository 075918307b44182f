/**
 * The project's own benign seeds (`data/benign-seeds.jsonl`, written for this project, MIT like the
 * rest of it): plain helpful requests, and requests that look harmful but are safe — a word with a
 * violent sense used innocently, a figure of speech, a harmless target, fiction and games, a
 * definition, history, safety advice, a public figure. A seeds world built only from a harmful
 * benchmark has one class; these give it the other, and measure over-refusal.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { packageRoot } from '../engine/model/model-dir';
import { jsonlMessage, loadJsonl } from '../util/jsonl-loader';
import { SeedRecord } from './seed-record';

export const BENIGN_FILE = 'data/benign-seeds.jsonl';

const BenignLineSchema = z
  .object({
    prompt: z.string().min(1),
    harmful: z.literal(false),
    category: z.enum(['helpful', 'looks-harmful']),
    kind: z.string().min(1),
  })
  .strict();

export class BenignSeedsError extends Error {}

export function benignSeedsPath(): string {
  return path.join(packageRoot(), BENIGN_FILE);
}

function projectPackage(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { name: string; version: string };
  return `${pkg.name}@${pkg.version}`;
}

/** The benign set as seed records; every line is checked, and an error names the line. */
export function benignSeeds(file = benignSeedsPath()): SeedRecord[] {
  const pkg = projectPackage();
  return loadJsonl(file, {
    what: 'the benign seeds',
    none: 'has no benign seeds',
    error: (f, line, problem) => new BenignSeedsError(jsonlMessage(f, line, problem)),
    parse: (value, line, fail): SeedRecord => {
      const parsed = BenignLineSchema.safeParse(value);
      if (!parsed.success) fail(`not a benign seed line (${parsed.error.issues.map((i) => `${i.path.join('.') || 'line'}: ${i.message}`).join('; ')})`);
      const b = parsed.data!;
      return { prompt: b.prompt, harmful: false, source: 'absp-benign', category: b.category, licence: 'MIT', package: pkg, file: BENIGN_FILE, line, tags: [b.kind] };
    },
  });
}
