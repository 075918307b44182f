/**
 * The layout of docs/architecture.md, checked on the source: imports between top-level folders run
 * one way (down), inside the engine too; the webview imports only webview/ and the shared protocol,
 * which touches no Node API; a run directory's paths are spelled only in rundir/; and no exported
 * type, class or schema name is declared twice.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

/** Top-level folders of extension/, bottom first; a folder may import only folders below it. */
const LAYERS: Record<string, number> = {
  util: 0,
  rundir: 1,
  engine: 2,
  sandbox: 3,
  bench: 3,
  datasets: 3,
  models: 3,
  trainer: 4,
  'panel-worker': 5,
  host: 6,
  cli: 6,
};

/** Inside the engine, bottom first; files at the engine's root stand on all of them. */
const ENGINE_LAYERS: Record<string, number> = { graph: 0, model: 1, lora: 2, runtime: 3, train: 4, '.': 5, torch: 6 };

/** The protocol the host and the panels share, and the pure schema files it carries on. */
const SHARED_PROTOCOL = ['webview/protocol.ts', 'extension/rundir/schema.ts', 'extension/rundir/outcome.ts', 'extension/rundir/metrics.ts', 'extension/panel-worker/protocol.ts'];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, d.name);
    if (d.isDirectory()) out.push(...sourceFiles(rel));
    else if (d.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

const FILES = [...sourceFiles('extension'), ...sourceFiles('webview')];
const source = new Map(FILES.map((f) => [f, fs.readFileSync(path.join(ROOT, f), 'utf8')]));

interface Import {
  from: string;
  /** The imported file (relative imports), or the module name (packages and node: builtins). */
  to: string;
  relative: boolean;
}

function importsOf(file: string): Import[] {
  const out: Import[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s[^'"`;]*?from\s*'([^']+)'|(?:^|\n)\s*import\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)|\brequire\(\s*'([^']+)'\s*\)/g;
  for (const m of source.get(file)!.matchAll(re)) {
    const spec = m[1] ?? m[2] ?? m[3] ?? m[4];
    if (!spec.startsWith('.')) {
      out.push({ from: file, to: spec, relative: false });
      continue;
    }
    const base = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
    const to = [`${base}.ts`, `${base}/index.ts`, base].find((c) => source.has(c));
    assert.ok(to, `${file}: cannot resolve the import ${spec}`);
    out.push({ from: file, to, relative: true });
  }
  return out;
}

const IMPORTS = FILES.flatMap(importsOf);
const topFolder = (file: string) => file.split('/')[1];

describe('architecture (docs/architecture.md)', () => {
  it('finds the imports it checks', () => {
    assert.ok(IMPORTS.filter((i) => i.relative).length > 300, 'the import scan found too few imports to mean anything');
  });

  it('imports between top-level folders of extension/ run one way: util, rundir < engine < sandbox, bench, datasets, models < trainer < panel-worker < host, cli', () => {
    const wrong: string[] = [];
    for (const i of IMPORTS.filter((x) => x.relative && x.from.startsWith('extension/'))) {
      const from = topFolder(i.from);
      assert.ok(from in LAYERS, `${i.from}: the folder extension/${from} has no place in the layers (add it here and to docs/architecture.md)`);
      if (i.to.startsWith('webview/')) {
        if (i.to !== 'webview/protocol.ts' || (from !== 'host' && from !== 'cli')) wrong.push(`${i.from} → ${i.to} (only the host reaches into webview/, for the shared protocol)`);
        continue;
      }
      const to = topFolder(i.to);
      if (from !== to && !(LAYERS[to] < LAYERS[from])) wrong.push(`${i.from} → ${i.to}`);
    }
    assert.deepEqual(wrong, [], 'imports running up or sideways');
  });

  it('inside the engine, files import only downward: graph < model < lora < runtime < train < the engine interface and its ORT implementation < the PyTorch engine\'s client', () => {
    const layer = (file: string) => {
      const parts = file.split('/');
      return parts.length === 3 ? '.' : parts[2];
    };
    const wrong: string[] = [];
    for (const i of IMPORTS.filter((x) => x.relative && x.from.startsWith('extension/engine/'))) {
      assert.ok(i.to.startsWith('extension/engine/') || i.to.startsWith('extension/util/'), `${i.from} imports ${i.to}: the engine is a library and imports nothing above it`);
      if (!i.to.startsWith('extension/engine/')) continue;
      const from = layer(i.from);
      const to = layer(i.to);
      assert.ok(from in ENGINE_LAYERS && to in ENGINE_LAYERS, `${i.from} → ${i.to}: a folder of the engine without a layer`);
      if (from !== to && !(ENGINE_LAYERS[to] < ENGINE_LAYERS[from])) wrong.push(`${i.from} → ${i.to}`);
    }
    assert.deepEqual(wrong, [], 'engine imports running up or sideways');
  });

  it('the webview imports only webview/ and the shared protocol, which imports no Node module', () => {
    const wrong: string[] = [];
    for (const i of IMPORTS) {
      const shared = SHARED_PROTOCOL.includes(i.from);
      if (!i.from.startsWith('webview/') && !shared) continue;
      if (!i.relative) {
        if (i.to.startsWith('node:') || (shared && i.to !== 'zod')) wrong.push(`${i.from} → ${i.to}`);
        continue;
      }
      const ok = shared ? SHARED_PROTOCOL.includes(i.to) : i.to.startsWith('webview/');
      if (!ok) wrong.push(`${i.from} → ${i.to}`);
    }
    assert.deepEqual(wrong, [], 'imports the panels cannot have');
  });

  it('no path of a run directory is spelled outside extension/rundir/', () => {
    // Names of a run's files and folders (docs/run-directory.md, "Layout"), and how round folders are written.
    const names = ['run.json', 'round.json', 'events.jsonl', 'nashgap.jsonl', 'crossplay.json', 'annotations.jsonl', 'trainer.log'];
    /** Folders of a run whose names are also ordinary words: flagged as arguments of path.join. */
    const folders = ['rounds', 'transcripts', 'eval', 'optimizer'];
    const wrong: string[] = [];
    for (const [file, text] of source) {
      if (file.startsWith('extension/rundir/')) continue;
      const lines = text.split('\n');
      lines.forEach((line, k) => {
        const where = `${file}:${k + 1}`;
        if (/^\s*(\*|\/\/)/.test(line)) return; // comments may name files
        for (const m of line.matchAll(/'([^'\\]*)'|"([^"\\]*)"/g)) {
          const s = m[1] ?? m[2];
          if (names.includes(s) || /^(rounds|transcripts|eval)\//.test(s) || /^round-\d/.test(s)) wrong.push(`${where}: ${s}`);
        }
        for (const m of line.matchAll(/`([^`]*)`/g)) {
          if (/(^|\/)round-\$\{|^(rounds|transcripts|eval)\//.test(m[1])) wrong.push(`${where}: \`${m[1]}\``);
        }
        for (const m of line.matchAll(/path(?:\.posix)?\.(?:join|resolve)\(([^)]*)\)/g)) {
          for (const a of m[1].matchAll(/'([^']*)'/g)) if (folders.includes(a[1])) wrong.push(`${where}: path.join(…, '${a[1]}')`);
        }
      });
    }
    assert.deepEqual(wrong, [], 'run paths built outside rundir/ (ask runLayout, slotRelPath or savedSlots)');
  });

  it('no exported type, interface, class or schema is declared twice, and no local type takes an exported name', () => {
    const exported = new Map<string, string[]>();
    const local = new Map<string, string[]>();
    for (const [file, text] of source) {
      for (const m of text.matchAll(/^(export\s+)?(?:declare\s+)?(?:abstract\s+)?(?:interface|type|class|enum)\s+([A-Za-z_$][\w$]*)/gm)) {
        const into = m[1] ? exported : local;
        into.set(m[2], [...(into.get(m[2]) ?? []), file]);
      }
      for (const m of text.matchAll(/^export\s+const\s+([A-Za-z_$][\w$]*Schema)\b/gm)) exported.set(m[1], [...(exported.get(m[1]) ?? []), file]);
    }
    const twice = [...exported].filter(([, files]) => files.length > 1).map(([name, files]) => `${name}: ${files.join(', ')}`);
    const shadowed = [...local].filter(([name]) => exported.has(name)).map(([name, files]) => `${name}: ${files.join(', ')} and ${exported.get(name)!.join(', ')}`);
    assert.deepEqual([...twice, ...shadowed], []);
  });
});
