/** The project's own benign seeds: enough of both kinds, well-formed, each prompt once. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BENIGN_FILE, BenignSeedsError, benignSeeds } from '../../extension/datasets/benign';
import { SeedRecordSchema } from '../../extension/datasets/seed-record';
import { tempDir } from '../helpers/random-checkpoint';

describe('data: the benign seeds', () => {
  it('holds at least 200 benign seeds, plain helpful and harmful-looking, each prompt once', () => {
    const seeds = benignSeeds();
    assert.ok(seeds.length >= 200, `${seeds.length} benign seeds`);
    for (const s of seeds) SeedRecordSchema.parse(s);
    assert.ok(seeds.every((s) => !s.harmful && s.source === 'absp-benign' && s.file === BENIGN_FILE && s.licence === 'MIT'));
    const helpful = seeds.filter((s) => s.category === 'helpful');
    const looksHarmful = seeds.filter((s) => s.category === 'looks-harmful');
    assert.ok(helpful.length >= 100 && looksHarmful.length >= 100, `${helpful.length} helpful, ${looksHarmful.length} harmful-looking`);
    // Harmful-looking requests of several kinds, so over-refusal is not measured on one trick.
    const kinds = new Set(looksHarmful.map((s) => s.tags![0]));
    assert.ok(kinds.size >= 6, `kinds: ${[...kinds].join(', ')}`);
    const normalised = seeds.map((s) => s.prompt.toLowerCase().replace(/\W+/g, ' ').trim());
    assert.equal(new Set(normalised).size, seeds.length, 'no prompt twice');
    assert.deepEqual(seeds.map((s) => s.line), seeds.map((_, i) => i + 1));
  });

  it('names the file and line of a malformed line', () => {
    const file = path.join(tempDir('absp-benign-'), 'b.jsonl');
    fs.writeFileSync(file, '{"prompt":"Is it sunny?","harmful":false,"category":"helpful","kind":"weather"}\n{"prompt":"x","harmful":true,"category":"helpful","kind":"k"}\n');
    assert.throws(() => benignSeeds(file), (e: Error) => e instanceof BenignSeedsError && e.message.startsWith(`${file}:2: not a benign seed line`));
    assert.throws(() => benignSeeds(path.join(path.dirname(file), 'missing.jsonl')), /cannot read the benign seeds/);
    fs.writeFileSync(file, '');
    assert.throws(() => benignSeeds(file), (e: Error) => e.message === `${file}: has no benign seeds`);
  });
});
