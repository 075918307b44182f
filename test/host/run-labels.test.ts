/** How runs are named wherever they appear: "name · start time", distinct among the runs listed. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { summarise, withRunLabels } from '../../extension/host/run-catalog';
import { formatStart, runLabels } from '../../extension/host/run-labels';
import { runNode } from '../../extension/host/tree-nodes';
import { BIPOLICY, RECORDED, SHARED, tempDir } from './helpers';

describe('host: run labels', () => {
  it('names runs "name · start time", precise enough to tell any two apart', () => {
    const at = (h: number, m: number, s = 0) => new Date(2026, 10, 23, h, m, s).toISOString();
    const labels = runLabels([
      { run: 'a', name: 'absp', created: at(22, 50, 1) },
      { run: 'b', name: 'absp', created: at(23, 20, 7) },
      { run: 'c', name: 'seed', created: at(9, 5, 1) },
      { run: 'd', name: 'seed', created: at(9, 5, 30) },
      { run: 'e', name: 'twin', created: at(9, 5, 30) },
      { run: 'f', name: 'twin', created: at(9, 5, 30) },
      { run: 'g', name: 'no-time', created: null },
    ]);
    assert.equal(labels.get('a'), 'absp · 23 Nov 22:50');
    assert.equal(labels.get('b'), 'absp · 23 Nov 23:20');
    assert.equal(labels.get('c'), 'seed · 23 Nov 09:05:01', 'same minute: seconds added');
    assert.equal(labels.get('d'), 'seed · 23 Nov 09:05:30');
    assert.equal(labels.get('e'), 'twin · 23 Nov 09:05:30 #1');
    assert.equal(labels.get('f'), 'twin · 23 Nov 09:05:30 #2');
    assert.equal(labels.get('g'), 'no-time');
    assert.equal(new Set(labels.values()).size, 7);
    assert.equal(formatStart('not a time'), '');
  });

  it('labels the catalog’s runs, which the Runs view and the panels show', () => {
    const dir = tempDir();
    for (const id of [BIPOLICY, SHARED]) fs.cpSync(path.join(RECORDED, id), path.join(dir, id), { recursive: true });
    // A second run of the bipolicy config, started in the same minute.
    const twin = path.join(dir, '2026-11-23T22-50-40-sandbox-bipolicy');
    fs.cpSync(path.join(RECORDED, BIPOLICY), twin, { recursive: true });
    const runJson = path.join(twin, 'run.json');
    const info = JSON.parse(fs.readFileSync(runJson, 'utf8'));
    fs.writeFileSync(runJson, JSON.stringify({ ...info, id: path.basename(twin), created: new Date(Date.parse(info.created) + 39_000).toISOString() }));
    const entries = withRunLabels([BIPOLICY, SHARED, path.basename(twin)].map((id) => summarise(path.join(dir, id))));
    const labels = entries.map((e) => e.summary.label);
    assert.equal(new Set(labels).size, 3);
    assert.match(labels[1], /^sandbox-shared-lora · 23 Nov \d\d:\d\d$/);
    assert.match(labels[0], /^sandbox-bipolicy · 23 Nov \d\d:\d\d:\d\d$/, 'same minute as its twin: seconds');
    assert.equal(runNode(entries[1]).label, labels[1], 'the Runs view shows the same label');
    assert.match(runNode(entries[1]).tooltip, new RegExp(SHARED), 'and the folder in the tooltip');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
