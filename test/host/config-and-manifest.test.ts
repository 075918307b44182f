/**
 * What the extension declares and writes: the starter config is one `absp run` accepts, the shipped
 * JSON schema of run configs matches the trainer's own schema, and package.json's contributions are
 * consistent with the commands the host registers.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runConfigJsonSchemaText } from '../../extension/host/config-schema';
import { CONTEXT_KEYS, catalogContext } from '../../extension/host/run-catalog';
import { builtinExperimentEntry, formatDuration, freeConfigName, seedsFolder, starterConfig, starterConfigText } from '../../extension/host/starter-config';
import { defaultRunConfig, parseRunConfig } from '../../extension/trainer/run-config';
import { CLI_ENTRY, ROOT, ensureBuilt, tempDir } from './helpers';

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
    // The starter trains the method as measured: its training fields are the defaults.
    const starter = parseRunConfig(starterConfig({ name: 'x', engine: 'ort' }), 'starter');
    const defaults = defaultRunConfig();
    for (const key of ['rounds', 'steps_per_round', 'schedule', 'game', 'rl', 'optimizer', 'lora', 'evaluation', 'baselines'] as const) assert.deepEqual(starter[key], defaults[key], key);
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

  it('builds Node bundles that never read the global navigator (VS Code reports a read as PendingMigrationError on activation)', () => {
    ensureBuilt();
    for (const name of fs.readdirSync(path.join(ROOT, 'dist')).filter((n) => n.endsWith('.js'))) {
      assert.doesNotMatch(fs.readFileSync(path.join(ROOT, 'dist', name), 'utf8'), /\bnavigator\b/, `dist/${name}`);
    }
    // The command line builds its schemas on load, as the extension does: under a navigator that
    // throws when read (VS Code's extension host), it must still start.
    const dir = tempDir();
    const preload = path.join(dir, 'navigator-throws.js');
    fs.writeFileSync(preload, "Object.defineProperty(globalThis, 'navigator', { configurable: true, get() { throw new Error('PendingMigrationError: navigator is now a global in nodejs'); } });\n");
    const out = spawnSync(process.execPath, ['--require', preload, CLI_ENTRY, '--help'], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(out.status, 0, out.stderr);
    assert.doesNotMatch(out.stderr, /navigator/);
  });

  it('shows a command only where it applies: its when clauses name context keys the host sets; Save is the primary button of a note being edited', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const menus = pkg.contributes.menus as Record<string, { command: string; when?: string; group?: string }[]>;
    const used = new Set<string>();
    for (const items of Object.values(menus)) for (const i of items) for (const m of (i.when ?? '').matchAll(/\babspLab\.has\w+/g)) used.add(m[0]);
    assert.deepEqual([...used].sort(), [...CONTEXT_KEYS].sort(), 'every key the menus use is set by the host, and every key it sets is used');
    const inPalette = (command: string) => menus.commandPalette.find((i) => i.command === command)?.when;
    // Two palette entries for one command show it when either clause holds (a merge once left three so).
    for (const [name, items] of Object.entries(menus)) {
      const seen = items.map((i) => i.command);
      if (name === 'commandPalette') assert.deepEqual(seen.filter((c, k) => seen.indexOf(c) !== k), [], 'a command listed twice in the palette');
    }
    assert.equal(inPalette('abspLab.stopRun'), 'abspLab.hasRunningRun');
    assert.equal(inPalette('abspLab.resumeRun'), 'abspLab.hasResumableRun && isWorkspaceTrusted');
    assert.equal(inPalette('abspLab.exportAnnotatedSeeds'), 'abspLab.hasAnnotations');
    // VS Code makes the first action of comments/comment/context the primary button (and Ctrl+Enter's).
    const editing = [...menus['comments/comment/context']].sort((a, b) => (a.group ?? '').localeCompare(b.group ?? ''));
    assert.deepEqual(editing.map((i) => i.command), ['abspLab.annotation.save', 'abspLab.annotation.cancelEdit']);
  });

  it('sets the context keys from the runs it lists', () => {
    const entry = (status: string | null, rounds: number, info = true) => ({ key: status ?? 'x', dir: 'x', summary: {} as never, info: info ? ({ rounds_completed: rounds } as never) : null, status: status as never });
    const none = catalogContext([], 0, false);
    assert.ok(Object.values(none).every((v) => v === false));
    const keys = catalogContext([entry('running', 1), entry('completed', 3), entry(null, 0, false)], 1, false);
    assert.deepEqual(keys, { 'abspLab.hasRuns': true, 'abspLab.hasRunningRun': true, 'abspLab.hasResumableRun': false, 'abspLab.hasCompleteRound': true, 'abspLab.hasAnnotations': true });
    assert.equal(catalogContext([entry('stopped', 0)], 0, false)['abspLab.hasResumableRun'], true);
    assert.equal(catalogContext([entry('completed', 2)], 0, true)['abspLab.hasRunningRun'], true, 'a job starting a run counts before its directory exists');
  });

  it('says what the built-in experiment runs and how long it took here last time', () => {
    const c = defaultRunConfig();
    const fresh = builtinExperimentEntry(c, 'ort', []);
    assert.equal(fresh.description, 'ABSP (bipolicy), then shared-lora at the same budget · sandbox model · engine ort');
    assert.match(fresh.detail, new RegExp(`^2 runs of ${c.rounds} rounds × ${c.steps_per_round} steps; the Nash gap measured every round, cross-play at the end · minutes on a laptop CPU`));
    const t = (m: number, s = 0) => new Date(Date.UTC(2026, 11, 1, 10, m, s)).toISOString();
    const past = [
      { name: c.name, status: 'completed', created: t(0), updated: t(2, 1) },
      { name: `${c.name}-shared-lora`, status: 'completed', created: t(2, 2), updated: t(4, 9) },
      { name: c.name, status: 'stopped', created: t(30), updated: t(31) },
    ];
    assert.match(builtinExperimentEntry(c, 'ort', past).detail, /last time here: 4 min 09 s for all 2 runs$/);
    assert.match(builtinExperimentEntry(c, 'ort', past.slice(0, 1)).detail, /last time here: 2 min 01 s for the bipolicy run alone$/);
    assert.deepEqual([formatDuration(52_400), formatDuration(249_000), formatDuration(3_780_000)], ['52 s', '4 min 09 s', '1 h 03 min']);
  });

  it('offers exported seeds a folder that exists', () => {
    const dir = tempDir();
    const run = path.join(dir, 'runs', 'r1');
    assert.equal(seedsFolder(dir, run), dir, 'no seeds/ folder: the workspace');
    fs.mkdirSync(path.join(dir, 'seeds'));
    assert.equal(seedsFolder(dir, run), path.join(dir, 'seeds'));
    assert.equal(seedsFolder(undefined, run), path.join(dir, 'runs'), 'no workspace: beside the run');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
