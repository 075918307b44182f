/**
 * What the extension declares and writes: the starter config is one `absp run` accepts, the shipped
 * JSON schema of run configs matches the trainer's own schema, and package.json's contributions are
 * consistent with the commands the host registers.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runConfigJsonSchemaText } from '../../extension/host/config-schema';
import { freeConfigName, starterConfig, starterConfigText } from '../../extension/host/starter-config';
import { parseRunConfig } from '../../extension/trainer/run-config';
import { ROOT } from './helpers';

const SCHEMA_FILE = path.join(ROOT, 'media', 'absp-config.schema.json');

describe('host: starter config, config schema and manifest', () => {
  it('writes starter configs that absp run accepts, for each engine and for exported seeds', () => {
    for (const o of [{ name: 'experiment', engine: 'ort' as const }, { name: 'gpu', engine: 'torch' as const }, { name: 'seeds', engine: 'ort' as const, seedsFile: 'seeds/a.jsonl' }]) {
      const text = starterConfigText(o);
      const parsed = parseRunConfig(JSON.parse(text), o.name);
      assert.equal(parsed.name, o.name);
      assert.equal(parsed.mode, 'bipolicy');
      assert.equal(parsed.engine.kind, o.engine);
    }
    // No python: a config never chooses the executable (the user's pythonPath setting or the set-up environment does).
    assert.deepEqual(starterConfig({ name: 'x', engine: 'torch' }).engine, { kind: 'torch', device: 'cuda', dtype: 'bfloat16' });
    assert.deepEqual(starterConfig({ name: 'x', engine: 'ort', seedsFile: 's.jsonl' }).world, { kind: 'seeds', file: 's.jsonl', include_sandbox: true });
    assert.equal(freeConfigName(new Set(['experiment.absp.json', 'experiment-2.absp.json'])), 'experiment-3.absp.json');
  });

  it('ships the run-config JSON schema generated from the trainer\'s schema (ABSP_UPDATE_SCHEMA=1 rewrites it)', () => {
    const generated = runConfigJsonSchemaText();
    if (process.env.ABSP_UPDATE_SCHEMA) fs.writeFileSync(SCHEMA_FILE, generated);
    assert.ok(fs.existsSync(SCHEMA_FILE), `${SCHEMA_FILE} is missing; run this test with ABSP_UPDATE_SCHEMA=1`);
    assert.equal(fs.readFileSync(SCHEMA_FILE, 'utf8'), generated, 'media/absp-config.schema.json is stale: run this test with ABSP_UPDATE_SCHEMA=1');
    const schema = JSON.parse(generated);
    assert.match(schema.properties.mode.description, /bipolicy: ABSP/);
    assert.ok(schema.properties.game.properties.seeds_per_step.description);
    assert.equal(schema.additionalProperties, false, 'unknown keys are flagged in the editor as absp run rejects them');
  });

  it('contributes every command it registers (and no other), under the ABSP category, with consistent menus', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const contributed: { command: string; category: string }[] = pkg.contributes.commands;
    const source = fs.readFileSync(path.join(ROOT, 'extension', 'host', 'commands.ts'), 'utf8');
    const registered = [...source.matchAll(/register\('(abspLab\.[\w.]+)'/g)].map((m) => m[1]).sort();
    assert.deepEqual(contributed.map((c) => c.command).sort(), registered);
    assert.ok(contributed.every((c) => c.category === 'ABSP'));
    const ids = new Set(registered);
    for (const [menu, items] of Object.entries(pkg.contributes.menus) as [string, { command: string }[]][]) {
      for (const item of items) assert.ok(ids.has(item.command), `menu ${menu} names unknown command ${item.command}`);
    }
    for (const kind of ['dashboard', 'stepper', 'adapter-diff']) assert.ok(pkg.activationEvents.includes(`onWebviewPanel:abspLab.${kind}`), `a restored ${kind} panel activates the extension`);
    const views = pkg.contributes.views.abspLab.map((v: { id: string }) => v.id);
    assert.deepEqual(views, ['abspLab.runs', 'abspLab.annotations']);
    for (const file of [pkg.icon, pkg.contributes.viewsContainers.activitybar[0].icon, pkg.contributes.jsonValidation[0].url]) assert.ok(fs.existsSync(path.join(ROOT, file)), `${file} exists`);
    for (const kind of ['dashboard', 'stepper', 'adapter-diff']) for (const t of ['light', 'dark']) assert.ok(fs.existsSync(path.join(ROOT, 'media', 'icons', `${kind}-${t}.svg`)));
    assert.equal(pkg.main, './dist/extension.js');
    assert.deepEqual(Object.keys(pkg.dependencies), ['onnxruntime-node'], 'no runtime dependency besides ONNX Runtime: the rest is bundled');
    const settings = Object.keys(pkg.contributes.configuration.properties).sort();
    assert.deepEqual(settings, ['abspLab.approvedJudgeEndpoints', 'abspLab.configGlob', 'abspLab.defaultEngine', 'abspLab.nodePath', 'abspLab.pythonPath', 'abspLab.runsFolder']);
  });
});
