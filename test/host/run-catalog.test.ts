/** The runs the editor lists: summaries, broken runs, runs opened from elsewhere, status changes. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunCatalog } from '../../extension/host/run-catalog';
import { roundChildren, roundNodes, runNode, contextValue } from '../../extension/host/tree-nodes';
import { RunReader, RunWriter } from '../../extension/rundir';
import { DEAD_PID, NEW_RUN } from '../rundir/helpers';
import { BIPOLICY, RECORDED, SHARED, copyDir, fingerprint, tempDir } from './helpers';

describe('host: runs catalog and the Runs view nodes', () => {
  let work: string;
  let runs: string;
  beforeEach(() => {
    work = tempDir();
    runs = path.join(work, 'runs');
    fs.mkdirSync(runs);
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it('lists runs newest first with their summaries, broken ones with the reason, and runs opened from elsewhere', () => {
    copyDir(path.join(RECORDED, BIPOLICY), path.join(runs, BIPOLICY));
    fs.mkdirSync(path.join(runs, 'broken'));
    fs.writeFileSync(path.join(runs, 'broken', 'run.json'), 'not json');
    fs.mkdirSync(path.join(runs, 'not-a-run'));
    const elsewhere = copyDir(path.join(RECORDED, SHARED), path.join(work, 'copied-from-gpu'));
    const before = fingerprint(work);
    const catalog = new RunCatalog(() => ({ runsFolder: runs, extraRuns: [elsewhere, path.join(runs, BIPOLICY)] }));
    const change = catalog.refresh();
    assert.ok(change);
    const rows = catalog.summaries();
    // Readable runs are named "name · start time"; one that cannot be opened keeps its folder name.
    assert.deepEqual(rows.map((r) => r.label.replace(/\d\d:\d\d$/, 'HH:MM')), ['sandbox-bipolicy · 23 Nov HH:MM', 'broken', 'sandbox-shared-lora · 23 Nov HH:MM']);
    assert.deepEqual(rows.map((r) => path.basename(r.run)), [BIPOLICY, 'broken', 'copied-from-gpu']);
    assert.equal(rows[0].status, 'completed');
    assert.equal(rows[0].mode, 'bipolicy');
    assert.equal(rows[1].error?.kind, 'corrupt');
    assert.equal(rows[2].mode, 'shared-lora');
    assert.deepEqual(rows[2].adapters?.['3'], ['shared']);
    assert.equal(catalog.refresh(), null, 'nothing changed: no event');
    assert.deepEqual(fingerprint(work), before);

    const node = runNode(catalog.entries()[0]);
    assert.equal(contextValue(node), 'run done');
    assert.match(node.description, /^completed · 3\/3 rounds · bipolicy$/);
    const rounds = roundNodes(node);
    assert.deepEqual(rounds.map((r) => r.round), [0, 1, 2, 3]);
    const children = roundChildren(rounds[2]);
    assert.deepEqual(children.map((c) => (c.kind === 'adapter' ? c.slot : c.kind)), ['attacker', 'defender', 'transcript']);
    const valid = RunReader.open(path.join(runs, BIPOLICY)).transcript(2).length;
    assert.ok(children[2].kind === 'transcript' && children[2].description === `${valid} exchanges`, JSON.stringify(children[2]));
    assert.equal(contextValue(runNode(catalog.entries()[1])), 'run broken');
  });

  it('tells which runs changed status: a live run whose trainer dies reads as interrupted', () => {
    const writer = RunWriter.create(runs, { ...NEW_RUN, id: 'live' });
    writer.completeRound(0, { steps: null, roles: ['attacker', 'defender'], metrics: {}, exchanges: 0 });
    const catalog = new RunCatalog(() => ({ runsFolder: runs, extraRuns: [] }));
    catalog.refresh();
    assert.equal(catalog.anyRunning, true);
    const live = runNode(catalog.entries()[0], 'round 1/3 · step 4/30');
    assert.equal(contextValue(live), 'run running');
    assert.match(live.description, /^round 1\/3 · step 4\/30 · 0\/3 rounds/);
    writer.event({ type: 'step', round: 1, step: 1, phase: 'both', metrics: {} });
    writer.exchange({ id: 'x', round: 1, step: 1, seed: { prompt: 'p', harmful: true }, attacked: false, turns: [{ attacker: null, defender: { thought: null, text: 't', raw: 't' } }], judge: { prompt_harmful: true, refusal: true, response_harmful: false, unparsable: false }, rewards: { attacker: null, defender: 1 }, adapters: {} });
    const liveRounds = roundNodes(live);
    assert.deepEqual(liveRounds.map((r) => [r.round, r.complete, r.description]), [[0, true, 'initial adapters'], [1, false, 'in progress']]);
    assert.deepEqual(roundChildren(liveRounds[1]).map((c) => [c.kind, c.description]), [['transcript', '1 so far']], 'a live round: its transcript so far, no adapters yet');

    // The trainer dies without a word: its pid is gone.
    const runJson = path.join(writer.dir, 'run.json');
    fs.writeFileSync(runJson, JSON.stringify({ ...JSON.parse(fs.readFileSync(runJson, 'utf8')), pid: DEAD_PID }));
    const change = catalog.refresh();
    assert.deepEqual(change?.statusChanges.map((s) => [path.basename(s.dir), s.from, s.to]), [['live', 'running', 'interrupted']]);
    assert.equal(contextValue(runNode(catalog.entries()[0])), 'run resumable');
    assert.equal(catalog.anyRunning, false);
  });
});
