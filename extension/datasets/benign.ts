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
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new BenignSeedsError(`${file}: cannot read the benign seeds (${(e as Error).message})`);
  }
  const pkg = projectPackage();
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line, i) => {
    let parsed: z.infer<typeof BenignLineSchema>;
    try {
      parsed = BenignLineSchema.parse(JSON.parse(line));
    } catch (e) {
      throw new BenignSeedsError(`${file}:${i + 1}: not a benign seed line (${(e as Error).message.split('\n')[0]})`);
    }
    return { prompt: parsed.prompt, harmful: false, source: 'absp-benign', category: parsed.category, licence: 'MIT', package: pkg, file: BENIGN_FILE, line: i + 1, tags: [parsed.kind] };
  });
}
