/**
 * The host's side of the panel protocol (PanelSession) with real run directories: every message from
 * a panel is validated, requests are answered, live runs are followed, and damaged runs — half-written,
 * from a newer format, with corrupt lines — become messages the panel shows. Nothing in a run directory
 * changes except annotations.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PanelWorkerClient } from '../../extension/panel-worker/client';
import { PanelSession, type PanelServices, type RunLookup } from '../../extension/host/panel-session';
import { RunCatalog } from '../../extension/host/run-catalog';
import { RunWriter, putAnnotation } from '../../extension/rundir';
import { PROTOCOL_VERSION, parseHostMessage, type HostMessage } from '../../webview/protocol';
import { exchange, NEW_RUN } from '../rundir/helpers';
import { BIPOLICY, RECORDED, SHARED, WORKER_SCRIPT, copyDir, ensureBuilt, fingerprint, tempDir } from './helpers';

type Msg<T extends HostMessage['type']> = Extract<HostMessage, { type: T }>;

class Harness {
  readonly sent: HostMessage[] = [];
  readonly logs: string[] = [];
  readonly annotateCalls: [string, number, string][] = [];
  readonly session: PanelSession;

  constructor(runs: RunLookup, engine: PanelServices['panelWorker'] = null) {
    this.session = new PanelSession(
      (m) => {
        // What the panel would do with it: validate it against the protocol.
        const parsed = parseHostMessage(JSON.parse(JSON.stringify(m)));
        assert.ok(parsed.ok, `the host sent a message the panel rejects: ${!parsed.ok && parsed.error}`);
        this.sent.push(m);
      },
      { runs, panelWorker: engine, annotate: (dir, round, x) => void this.annotateCalls.push([dir, round, x]), log: (l) => this.logs.push(l) },
    );
  }

  of<T extends HostMessage['type']>(type: T): Msg<T>[] {
    return this.sent.filter((m): m is Msg<T> => m.type === type);
  }

  last<T extends HostMessage['type']>(type: T): Msg<T> {
    const all = this.of(type);
    assert.ok(all.length, `no ${type} message was sent (sent: ${this.sent.map((m) => m.type).join(', ')})`);
    return all[all.length - 1];
  }

  clear(): void {
    this.sent.length = 0;
  }
}

function catalogLookup(catalog: RunCatalog): RunLookup {
  return { summaries: () => catalog.summaries(), sweeps: () => catalog.sweeps(), dirOf: (key) => catalog.get(key)?.dir };
}

describe('host: panel session (protocol handling with real run directories)', () => {
  let work: string;
  let runs: string;
  let catalog: RunCatalog;

  beforeEach(() => {
    work = tempDir();
    runs = path.join(work, 'runs');
    fs.mkdirSync(runs);
    copyDir(path.join(RECORDED, BIPOLICY), path.join(runs, BIPOLICY));
    copyDir(path.join(RECORDED, SHARED), path.join(runs, SHARED));
    catalog = new RunCatalog(() => ({ runsFolder: runs, extraRuns: [] }));
    catalog.refresh();
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it('answers ready with init (runs, and only a focus on runs it knows), then run-data and annotations for watched runs', async () => {
    const h = new Harness(catalogLookup(catalog));
    const bip = path.join(runs, BIPOLICY);
    await h.session.setFocus({ runs: [bip, path.join(work, 'elsewhere')], round: 2 });
    await h.session.receive({ type: 'ready', panel: 'stepper', protocol: PROTOCOL_VERSION });
    const init = h.last('init');
    assert.equal(init.panel, 'stepper');
    assert.deepEqual(init.runs.map((r) => path.basename(r.run)).sort(), [BIPOLICY, SHARED]);
    assert.deepEqual(init.runs.map((r) => r.label.replace(/ · .*/, '')).sort(), ['sandbox-bipolicy', 'sandbox-shared-lora'], 'labelled "name · start time"');
    assert.deepEqual(init.focus, { runs: [bip], round: 2 });
    // The page is rebuilt (the panel was hidden and shown): its own saved state decides, not the focus again.
    await h.session.receive({ type: 'ready', panel: 'stepper', protocol: PROTOCOL_VERSION });
    assert.equal(h.last('init').focus, null, 'the focus is sent once');
    const summary = init.runs.find((r) => r.run === bip)!;
    assert.deepEqual(summary.adapters, { '0': ['attacker', 'defender'], '1': ['attacker', 'defender'], '2': ['attacker', 'defender'], '3': ['attacker', 'defender'] });

    await h.session.receive({ type: 'watch-runs', runs: [bip] });
    const data = h.last('run-data').data;
    assert.equal(data.run, bip);
    assert.equal(data.rounds.length, 4);
    assert.ok(data.events.length > 0);
    assert.deepEqual(data.transcriptRounds, [1, 2, 3]);
    assert.equal(h.last('annotations').run, bip);

    await h.session.receive({ type: 'request-transcript', run: bip, round: 2 });
    const t = h.last('transcript');
    assert.equal(t.round, 2);
    assert.ok(t.exchanges.length > 0 && t.exchanges.every((x) => x.round === 2));
  });

  it('rejects messages of the wrong shape with an error the panel shows, and keeps working', async () => {
    const h = new Harness(catalogLookup(catalog));
    for (const bad of [null, 'ready', { type: 'ready' }, { type: 'watch-runs', runs: 'all' }, { type: 'replay', requestId: '', run: 'x', round: -1 }, { type: 'launch-missiles' }]) {
      await h.session.receive(bad);
    }
    const errors = h.of('error');
    assert.equal(errors.length, 6);
    assert.ok(errors.every((e) => /^ABSP Lab ignored a message from this panel: webview message .* is malformed: /.test(e.message)), errors.map((e) => e.message).join('\n'));
    assert.match(errors[3].message, /"watch-runs" is malformed: runs/);
    assert.equal(h.logs.length, 6);
    await h.session.receive({ type: 'ready', panel: 'dashboard', protocol: PROTOCOL_VERSION });
    assert.equal(h.last('init').panel, 'dashboard');
    // A panel from another protocol version is told so (and still gets its init).
    h.clear();
    await h.session.receive({ type: 'ready', panel: 'dashboard', protocol: PROTOCOL_VERSION + 1 });
    assert.match(h.last('error').message, /protocol 2 and the extension 1: close the panel and open it again/);
    assert.equal(h.of('init').length, 1);
  });

  it('reports runs that cannot be shown — newer format, corrupt run.json, unknown — as errors of that run', async () => {
    const newer = copyDir(path.join(RECORDED, SHARED), path.join(runs, 'newer'));
    const runJson = path.join(newer, 'run.json');
    fs.writeFileSync(runJson, JSON.stringify({ ...JSON.parse(fs.readFileSync(runJson, 'utf8')), version: 2 }));
    const corrupt = copyDir(path.join(RECORDED, SHARED), path.join(runs, 'corrupt'));
    fs.writeFileSync(path.join(corrupt, 'run.json'), '{"format": "absp-run", "version": 1, "id": ');
    catalog.refresh();
    const before = fingerprint(runs);
    const h = new Harness(catalogLookup(catalog));
    await h.session.receive({ type: 'ready', panel: 'dashboard', protocol: PROTOCOL_VERSION });
    const rows = h.last('init').runs;
    assert.equal(rows.find((r) => r.run === newer)?.error?.kind, 'newer-format');
    assert.equal(rows.find((r) => r.run === corrupt)?.error?.kind, 'corrupt');

    await h.session.receive({ type: 'watch-runs', runs: [newer, corrupt, path.join(work, 'gone')] });
    const errors = h.of('error');
    assert.deepEqual(errors.map((e) => [e.run, e.kind]), [
      [newer, 'newer-format'],
      [corrupt, 'corrupt'],
      [path.join(work, 'gone'), 'not-a-run'],
    ]);
    assert.match(errors[0].message, /format version 2, newer than the version 1 .*update ABSP Lab/);
    assert.match(errors[2].message, /does not know a run/);
    await h.session.receive({ type: 'request-transcript', run: path.join(work, 'gone'), round: 1 });
    assert.equal(h.last('error').kind, 'not-a-run');
    assert.equal(h.of('run-data').length, 0);
    assert.deepEqual(fingerprint(runs), before);
  });

  it('shows a half-written run with corrupt lines: the valid records, the damage listed as issues, nothing repaired', async () => {
    const bip = path.join(runs, BIPOLICY);
    fs.appendFileSync(path.join(bip, 'events.jsonl'), 'this is not json\n{"type":"step","t":"x","attempt":1,"round":3,"step":99,"phase":"both","metr');
    fs.appendFileSync(path.join(bip, 'transcripts', 'round-0003.jsonl'), '{"id": 7}\n');
    const before = fingerprint(runs);
    const h = new Harness(catalogLookup(catalog));
    await h.session.receive({ type: 'ready', panel: 'stepper', protocol: PROTOCOL_VERSION });
    await h.session.receive({ type: 'watch-runs', runs: [bip] });
    const data = h.last('run-data').data;
    assert.ok(data.issues.some((i) => i.file.endsWith('events.jsonl') && /not valid JSON|JSON/.test(i.problem)), JSON.stringify(data.issues));
    assert.ok(!data.events.some((e) => e.type === 'step' && e.step === 99), 'the torn last line is not read yet');
    await h.session.receive({ type: 'request-transcript', run: bip, round: 3 });
    assert.ok(h.last('transcript').exchanges.length > 0, 'the valid exchanges of the round still arrive');
    assert.ok(h.logs.some((l) => /skipped round-0003\.jsonl line \d+/.test(l)), h.logs.join('\n'));
    assert.deepEqual(fingerprint(runs), before, 'reading never writes');
  });

  it('follows a live run: run-append, transcript-append, annotations, runs; and a resume resends run-data', async () => {
    const writer = RunWriter.create(runs, { ...NEW_RUN, id: 'live' });
    writer.completeRound(0, { steps: null, roles: ['attacker', 'defender'], metrics: {}, exchanges: 0 });
    catalog.refresh();
    const h = new Harness(catalogLookup(catalog));
    await h.session.receive({ type: 'ready', panel: 'stepper', protocol: PROTOCOL_VERSION });
    await h.session.receive({ type: 'watch-runs', runs: [writer.dir] });
    assert.equal(h.last('run-data').data.status, 'running');
    h.clear();

    writer.event({ type: 'step', round: 1, step: 1, phase: 'both', metrics: { asr: 0.5 } });
    writer.exchange(exchange(1, 1, 0));
    writer.exchange(exchange(1, 1, 1));
    await h.session.tick();
    const append = h.last('run-append');
    assert.deepEqual(append.events.map((e) => e.type), ['step']);
    const tx = h.last('transcript-append');
    assert.equal(tx.round, 1);
    assert.deepEqual(tx.exchanges.map((x) => x.id), ['r1-s1-0', 'r1-s1-1']);
    h.clear();
    await h.session.tick();
    assert.deepEqual(h.sent, [], 'nothing new, nothing sent');

    putAnnotation(writer.dir, { exchange: 'r1-s1-0', round: 1, label: 'jailbreak', note: 'gets through' });
    writer.completeRound(1, { steps: [1, 1], roles: ['attacker', 'defender'], metrics: { nash_gap: 0.4 }, exchanges: 2 });
    await h.session.tick();
    assert.deepEqual(h.last('annotations').annotations.map((a) => a.note), ['gets through']);
    assert.deepEqual(h.last('run-append').rounds.map((r) => r.round), [1]);
    assert.ok(catalog.refresh(), 'the catalog sees the completed round');
    await h.session.pushRuns();
    assert.equal(h.last('runs').runs.find((r) => r.run === writer.dir)?.rounds_completed, 1);

    writer.setStatus('stopped', 'by the test');
    const resumed = RunWriter.resume(writer.dir);
    resumed.event({ type: 'resume', round: 2, from_round: 2 });
    h.clear();
    await h.session.tick();
    assert.equal(h.of('run-data').length, 1, 'a new attempt replaces what the panel held');
  });

  it('asks the host to open an exchange for annotating, and answers replay and adapter-diff through the panel worker', async () => {
    ensureBuilt();
    const engine = new PanelWorkerClient({ workerScript: WORKER_SCRIPT });
    try {
      const bip = path.join(runs, BIPOLICY);
      const h = new Harness(catalogLookup(catalog), engine);
      await h.session.receive({ type: 'ready', panel: 'adapter-diff', protocol: PROTOCOL_VERSION });
      await h.session.receive({ type: 'annotate', run: bip, round: 1, exchange: 'r0001-s000001-00' });
      assert.deepEqual(h.annotateCalls, [[bip, 1, 'r0001-s000001-00']]);

      await h.session.receive({ type: 'adapter-diff', requestId: 'd1', left: { run: bip, round: 1, slot: 'attacker' }, right: { run: bip, round: 1, slot: 'defender' } });
      const result = h.last('adapter-diff-result');
      assert.equal(result.requestId, 'd1');
      assert.ok(result.result.modules.length > 0);
      assert.ok(h.of('adapter-diff-progress').length > 0);

      await h.session.receive({ type: 'adapter-diff', requestId: 'd2', left: { run: bip, round: 1, slot: '../../../etc' }, right: { run: bip, round: 1, slot: 'defender' } });
      // The protocol itself refuses a slot that is not a plain folder name (test/bad-input has more).
      assert.match(h.last('error').message, /webview message "adapter-diff" is malformed: left\.slot: must be an adapter folder name/);
      await h.session.receive({ type: 'adapter-diff', requestId: 'd3', left: { run: bip, round: 9, slot: 'attacker' }, right: { run: bip, round: 1, slot: 'defender' } });
      assert.equal(h.last('error').requestId, 'd3');
      assert.match(h.last('error').message, /round-0009\/attacker: is not a folder of this run \(missing, or a symbolic link\)/);

      // The recorded run's config is not one the engine can replay: an error for that request, not a blank.
      await h.session.receive({ type: 'replay', requestId: 'r1', run: bip, round: 1, exchange: 'whatever', adapterRound: 2 });
      assert.equal(h.last('error').requestId, 'r1');
      assert.ok(h.last('error').message.length > 10);
    } finally {
      await engine.dispose();
    }
  });

  it('without a panel worker, replay and diff requests get an error naming the cause', async () => {
    const bip = path.join(runs, BIPOLICY);
    const h = new Harness(catalogLookup(catalog), null);
    await h.session.receive({ type: 'replay', requestId: 'r1', run: bip, round: 1, exchange: 'x', adapterRound: 2 });
    assert.deepEqual([h.last('error').requestId, h.last('error').message], ['r1', 'replay needs the panel worker, which is not available in this installation']);
  });
});
