/**
 * PEFT adapters from a hub or a colleague: their adapter_config.json and adapter_model.safetensors.
 * Finding 4 (regular expressions in target_modules and rank_pattern), links and FIFOs, and what held
 * (shapes, missing halves, pickles, damaged safetensors).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createAdapter, loadAdapter, readPeftAdapter, saveAdapter } from '../../extension/engine/lora/adapter';
import { parseConfig } from '../../extension/engine/model/model-config';
import { randomConfig } from '../helpers/random-checkpoint';
import type { BadInputCase } from './harness';

const MODEL = parseConfig(randomConfig({ numLayers: 2 }), 'config.json');

/** A valid adapter for the tiny model, then `edit` applied to its adapter_config.json. */
function adapter(dir: string, edit: (c: Record<string, unknown>) => void = () => {}): string {
  const out = path.join(dir, 'adapter');
  saveAdapter(out, createAdapter(MODEL, { rank: 2, alpha: 4, targets: ['q_proj', 'v_proj'], seed: 1 }), 'tiny', MODEL);
  const file = path.join(out, 'adapter_config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(c);
  fs.writeFileSync(file, JSON.stringify(c));
  return out;
}

/** PEFT's catastrophic-backtracking pattern: exponential on a backtracking engine. */
const EVIL = '(.*.*.*.*.*.*.*.*.*.*)*X';

export const cases: BadInputCase[] = [
  {
    name: `target_modules "${EVIL}": matched in linear time (RE2), one error that it matches no module`,
    setup: (dir) => adapter(dir, (c) => (c.target_modules = EVIL)),
    act: (_dir, a) => loadAdapter(a as string, MODEL),
    expect: { error: /adapter_config\.json: target_modules .* matches none of q_proj/ },
    deadlineMs: 1000,
  },
  {
    name: 'rank_pattern with a catastrophic key: read in linear time',
    setup: (dir) => adapter(dir, (c) => (c.rank_pattern = { [EVIL]: 4, '(a|aa)+$': 2 })),
    act: (_dir, a) => loadAdapter(a as string, MODEL).settings.rank,
    expect: { handled: (rank) => assert.equal(rank, 2) },
    deadlineMs: 1000,
  },
  {
    name: 'alpha_pattern with a backreference: refused, naming the field (RE2 has none)',
    setup: (dir) => adapter(dir, (c) => (c.alpha_pattern = { '(q)\\1_proj': 8 })),
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_config\.json: alpha_pattern key .* is not a regular expression this reader accepts \(RE2 syntax/ },
  },
  {
    name: 'rank_pattern with a rank of 1e9: refused',
    setup: (dir) => adapter(dir, (c) => (c.rank_pattern = { q_proj: 1e9 })),
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_config\.json: rank_pattern\["q_proj"\] must be a positive integer up to 65536, got 1000000000/ },
  },
  {
    name: 'r: 1e9: refused before any tensor is read',
    setup: (dir) => adapter(dir, (c) => (c.r = 1e9)),
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_config\.json: r must be a positive integer up to 65536, got 1000000000/ },
  },
  {
    name: 'a pattern of 100 000 characters: refused',
    setup: (dir) => adapter(dir, (c) => (c.target_modules = 'q_proj|'.repeat(15000) + 'v_proj')),
    act: (_dir, a) => loadAdapter(a as string, MODEL),
    expect: { error: /adapter_config\.json: target_modules is a pattern of \d+ characters, more than 1024/ },
  },
  {
    name: 'adapter_model.safetensors is a FIFO: an error at once',
    setup: (dir) => {
      const a = adapter(dir);
      fs.rmSync(path.join(a, 'adapter_model.safetensors'));
      execFileSync('mkfifo', [path.join(a, 'adapter_model.safetensors')]);
      return a;
    },
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_model\.safetensors: cannot open: it is a FIFO/ },
    deadlineMs: 1000,
  },
  {
    name: 'adapter_config.json is a link to a file elsewhere: not followed',
    setup: (dir) => {
      const a = adapter(dir);
      const elsewhere = path.join(dir, 'elsewhere.json');
      fs.renameSync(path.join(a, 'adapter_config.json'), elsewhere);
      fs.symlinkSync(elsewhere, path.join(a, 'adapter_config.json'));
      return a;
    },
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_config\.json: cannot be read: it is a symbolic link/ },
  },
  {
    name: 'a pickle-only adapter (adapter_model.bin) is refused, not loaded (held: no pickle)',
    setup: (dir) => {
      const a = adapter(dir);
      fs.rmSync(path.join(a, 'adapter_model.safetensors'));
      fs.writeFileSync(path.join(a, 'adapter_model.bin'), 'cos\nsystem\n(S"touch /tmp/pwned"\ntR.');
      return a;
    },
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_model\.safetensors: is missing \(only adapter_model\.bin, a pickle, which is not read/ },
  },
  {
    name: 'target_modules naming a module the model lacks (held)',
    setup: (dir) => adapter(dir, (c) => (c.target_modules = ['q_proj', 'lm_head'])),
    act: (_dir, a) => loadAdapter(a as string, MODEL),
    expect: { error: /adapter_config\.json: target module "lm_head" does not exist in a Qwen2 model/ },
  },
  {
    name: 'layers_to_transform naming layer 10^6 (held)',
    setup: (dir) => adapter(dir, (c) => (c.layers_to_transform = [0, 1_000_000])),
    act: (_dir, a) => loadAdapter(a as string, MODEL),
    expect: { error: /adapter_config\.json: layers_to_transform names layer 1000000, but the model has 2 layers/ },
  },
  {
    name: 'a safetensors header declaring 10^15 bytes (held)',
    setup: (dir) => {
      const a = adapter(dir);
      const f = path.join(a, 'adapter_model.safetensors');
      const buf = fs.readFileSync(f);
      buf.writeBigUInt64LE(10n ** 15n, 0);
      fs.writeFileSync(f, buf);
      return a;
    },
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_model\.safetensors: declares a 1000000000000000-byte header, more than the 104857600-byte limit/ },
  },
  {
    name: 'a tensor whose offsets run past the end of the file (held)',
    setup: (dir) => {
      const a = adapter(dir);
      const f = path.join(a, 'adapter_model.safetensors');
      fs.truncateSync(f, fs.statSync(f).size - 64);
      return a;
    },
    act: (_dir, a) => readPeftAdapter(a as string),
    expect: { error: /adapter_model\.safetensors: .*(beyond|past|outside|exceed|end)/i },
  },
  {
    name: 'an adapter whose tensors do not fit the model (held)',
    setup: (dir) => {
      const other = parseConfig(randomConfig({ numLayers: 2, hiddenSize: 16, numHeads: 2, numKvHeads: 1 }), 'config.json');
      const out = path.join(dir, 'adapter');
      saveAdapter(out, createAdapter(other, { rank: 2, alpha: 4, targets: ['q_proj'], seed: 1 }), 'other', other);
      return out;
    },
    act: (_dir, a) => loadAdapter(a as string, MODEL),
    expect: { error: /adapter_model\.safetensors: .* has shape \[2, 16\], but rank 2 on this model needs \[2, 32\]/ },
  },
];
