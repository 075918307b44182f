import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  FORMAT_VERSION,
  RunDirError,
  RunReader,
  RunWriter,
  RunWriterError,
  effectiveStatus,
  listRuns,
  type RunInfo,
} from '../../extension/rundir';
import { DEAD_PID, NEW_RUN, exchange, fixedClock, fingerprint, tempDir } from './helpers';

describe('run directory: writer and reader', () => {
  let runs: string;
  beforeEach(() => {
    runs = tempDir();
  });
  afterEach(() => fs.rmSync(runs, { recursive: true, force: true }));

  function playRound(w: RunWriter, round: number, firstStep: number, n = 2) {
    for (let s = firstStep; s < firstStep + n; s++) {
      w.exchange(exchange(round, s, 0));
      w.event({ type: 'step', round, step: s, phase: 'both', metrics: { asr: 0.5, 'reward/attacker': s } });
    }
  }

  it('writes the layout of docs/run-directory.md and reads every part back', () => {
    const w = RunWriter.create(runs, NEW_RUN, { now: fixedClock(), pid: 1234, host: 'box' });
    w.event({ type: 'start', round: 0, config_hash: 'abc' });
    w.writeRoundFile(0, 'attacker/adapter_config.json', '{}');
    w.completeRound(0, { steps: null, roles: ['attacker', 'defender'], metrics: { nash_gap: 0.8 }, exchanges: 0 });
    playRound(w, 1, 1);
    w.completeRound(1, {
      steps: [1, 2],
      roles: ['attacker', 'defender'],
      metrics: { nash_gap: 0.5 },
      exchanges: 2,
      nashgap: { method: 'exact', nash_gap: 0.5, defender_exploitability: 0.4, attacker_gap: 0.1, best_response_asr: 0.6, budget: null },
    });
    w.writeCrossplay({ version: 1, method: 'exact', attackers: [{ label: 'r1', run: 'test-run', round: 1, path: 'rounds/round-0001/attacker' }], defenders: [{ label: 'base', run: 'test-run', round: null, path: 'base' }], asr: [[0.3]], samples: 10 });
    w.writeEval('xs', { version: 1, name: 'xs', created: '2026-01-01T00:00:00.000Z', data: 'x.jsonl', adapters: {}, metrics: { asr: { value: 0.1, ci95: [0.05, 0.2], n: 40 } } });
    w.setStatus('completed');

    const dir = path.join(runs, 'test-run');
    for (const f of ['run.json', 'config.json', 'events.jsonl', 'transcripts/round-0001.jsonl', 'rounds/round-0000/round.json', 'rounds/round-0001/round.json', 'rounds/round-0000/attacker/adapter_config.json', 'nashgap.jsonl', 'crossplay.json', 'eval/xs.json']) {
      assert.ok(fs.existsSync(path.join(dir, f)), `${f} exists`);
    }
    const r = RunReader.open(dir);
    const snap = r.load();
    assert.equal(snap.info.format, 'absp-run');
    assert.equal(snap.info.version, FORMAT_VERSION);
    assert.equal(snap.info.status, 'completed');
    assert.equal(snap.info.rounds_completed, 1);
    assert.equal(snap.info.host, 'box');
    assert.deepEqual(snap.config, NEW_RUN.config);
    assert.deepEqual(snap.rounds.map((x) => x.round), [0, 1]);
    assert.deepEqual(snap.events.map((e) => e.type), ['start', 'round', 'step', 'step', 'round', 'status']);
    assert.equal(snap.nashgap.length, 1);
    assert.deepEqual(snap.crossplay?.asr, [[0.3]]);
    assert.equal(snap.evals[0].result.metrics.asr.value, 0.1);
    assert.deepEqual(snap.transcriptRounds, [1]);
    assert.deepEqual(r.transcript(1).map((x) => x.id), ['r1-s1-0', 'r1-s2-0']);
    assert.deepEqual(snap.issues, []);
    // Each record carries the attempt that wrote it.
    assert.ok(snap.events.every((e) => e.attempt === 1));
  });

  it('writes the round event and Nash-gap record before round.json, so a crash in between leaves them void', () => {
    const w = RunWriter.create(runs, NEW_RUN, { now: fixedClock(), pid: DEAD_PID });
    playRound(w, 1, 1);
    w.completeRound(1, { steps: [1, 2], roles: [], metrics: { nash_gap: 0.5 }, exchanges: 2 });
    playRound(w, 2, 3);
    // Round 2 "completes" up to its marker: the event and Nash gap are written, round.json is not.
    w.event({ type: 'round', round: 2, metrics: { nash_gap: 0.99 } });
    w.appendNashGap({ round: 2, method: 'exact', nash_gap: 0.99, defender_exploitability: null, attacker_gap: null, best_response_asr: null, budget: null });
    const dir = w.dir;
    const resumed = RunWriter.resume(dir, { now: fixedClock('2026-02-01T00:00:00.000Z'), pid: DEAD_PID + 1 });
    assert.equal(resumed.attempt, 2);
    playRound(resumed, 2, 3);
    resumed.completeRound(2, {
      steps: [3, 4],
      roles: [],
      metrics: { nash_gap: 0.3 },
      exchanges: 2,
      nashgap: { method: 'exact', nash_gap: 0.3, defender_exploitability: null, attacker_gap: null, best_response_asr: null, budget: null },
    });

    const snap = RunReader.open(dir).load();
    const gaps = snap.events.filter((e) => e.type === 'round').map((e) => (e.type === 'round' ? [e.round, e.metrics.nash_gap, e.attempt] : null));
    assert.deepEqual(gaps, [[1, 0.5, 1], [2, 0.3, 2]]);
    assert.deepEqual(snap.nashgap.map((g) => g.nash_gap), [0.3]);
    const steps = snap.events.filter((e) => e.type === 'step').map((e) => `${e.round}:${e.type === 'step' ? e.step : ''}@${e.attempt}`);
    assert.deepEqual(steps, ['1:1@1', '1:2@1', '2:3@2', '2:4@2'], 'each step present exactly once, from the attempt that completed its round');
    const resume = snap.events.find((e) => e.type === 'resume');
    assert.ok(resume && resume.type === 'resume' && resume.from_round === 2 && resume.round === 2 && resume.attempt === 2);
    assert.deepEqual(RunReader.open(dir).transcript(2).map((x) => `${x.id}@${x.attempt}`), ['r2-s3-0@2', 'r2-s4-0@2']);
  });

  it('refuses to complete a round twice and to write invalid records, naming the field', () => {
    const w = RunWriter.create(runs, NEW_RUN, { now: fixedClock() });
    w.completeRound(0, { steps: null, roles: [], metrics: {}, exchanges: 0 });
    assert.throws(() => w.completeRound(0, { steps: null, roles: [], metrics: {}, exchanges: 0 }), /already complete/);
    assert.throws(() => w.exchange({ ...exchange(1, 1, 0), turns: [] }), (e: Error) => e instanceof RunWriterError && /turns/.test(e.message));
    assert.throws(() => w.event({ type: 'step', round: 1, step: 1, phase: 'sideways' as never, metrics: {} }), /phase/);
    assert.throws(() => w.writeRoundFile(1, '../escape.json', '{}'), /plain path/);
    assert.throws(() => RunWriter.create(runs, NEW_RUN), /already holds a run/);
    assert.equal(fs.readFileSync(path.join(w.dir, 'events.jsonl'), 'utf8').includes('sideways'), false, 'nothing was written');
  });

  it('ends a torn last line when reopening, so the reader skips exactly that one line', () => {
    const w = RunWriter.create(runs, NEW_RUN, { now: fixedClock() });
    w.event({ type: 'start', round: 0, config_hash: 'x' });
    fs.appendFileSync(path.join(w.dir, 'events.jsonl'), '{"type":"step","t":"2026');
    fs.appendFileSync(path.join(w.dir, 'transcripts', 'round-0001.jsonl'), '{"id":"torn"');
    // While the line is torn, a reader does not see it at all (it may still be in flight).
    assert.equal(RunReader.open(w.dir).load().issues.length, 0);
    const again = RunWriter.open(w.dir);
    again.event({ type: 'log', level: 'info', message: 'after the tear' });
    again.exchange(exchange(1, 1, 0));
    const r = RunReader.open(w.dir);
    const snap = r.load();
    assert.deepEqual(snap.events.map((e) => e.type), ['start', 'log']);
    assert.deepEqual(r.transcript(1).map((x) => x.id), ['r1-s1-0']);
    const issues = r.issues();
    assert.equal(issues.length, 2);
    assert.match(issues[0].file, /events\.jsonl$/);
    assert.equal(issues[0].line, 2);
    assert.match(issues[0].problem, /incomplete line: a record cut short/);
    assert.match(issues[1].problem, /incomplete line/);
  });

  it('skips and counts lines that are not JSON or do not match their schema, reading the rest', () => {
    const w = RunWriter.create(runs, NEW_RUN, { now: fixedClock() });
    w.event({ type: 'start', round: 0, config_hash: 'x' });
    const file = path.join(w.dir, 'events.jsonl');
    fs.appendFileSync(file, 'garbage\n{"type":"step","t":"x","attempt":1,"round":1,"step":"seven","phase":"both","metrics":{}}\n{"type":"unknown-kind","t":"x","attempt":1}\n\n');
    w.event({ type: 'step', round: 1, step: 1, phase: 'both', metrics: { asr: 1, 'new/metric-nobody-knows': 2 } });
    const r = RunReader.open(w.dir);
    const events = r.events();
    assert.deepEqual(events.map((e) => e.type), ['start', 'step']);
    const step = events[1];
    assert.ok(step.type === 'step' && step.metrics['new/metric-nobody-knows'] === 2, 'unknown metric names are kept');
    const issues = r.issues();
    assert.deepEqual(issues.map((i) => i.line), [2, 3, 4]);
    assert.match(issues[0].problem, /^not valid JSON/, 'garbage is not mistaken for a torn record');
    assert.match(issues[1].problem, /step/);
  });

  describe('open errors name the file and the problem', () => {
    function runJson(dir: string, value: unknown) {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'run.json'), typeof value === 'string' ? value : JSON.stringify(value));
    }
    const good = (): RunInfo => RunReader.open(RunWriter.create(runs, { ...NEW_RUN, id: 'good' }).dir).info;

    it('a folder without run.json is not a run directory', () => {
      const dir = path.join(runs, 'empty');
      fs.mkdirSync(dir);
      assert.throws(() => RunReader.open(dir), (e: unknown) => e instanceof RunDirError && e.kind === 'not-a-run' && e.message.includes('has no run.json') && e.message.includes(dir));
      assert.throws(() => RunReader.open(path.join(runs, 'missing')), /does not exist/);
    });

    it('a newer format version is refused with its number', () => {
      const dir = path.join(runs, 'newer');
      runJson(dir, { ...good(), version: 2, status: 'some-future-status' });
      assert.throws(
        () => RunReader.open(dir),
        (e: unknown) => e instanceof RunDirError && e.kind === 'newer-format' && /format version 2/.test(e.message) && /version 1/.test(e.message) && e.file.endsWith('run.json'),
      );
      assert.throws(() => RunWriter.open(dir), /newer/);
    });

    it('corrupt run.json: not JSON, or a field wrong', () => {
      const dir = path.join(runs, 'bad-json');
      runJson(dir, '{"format": "absp-run", "vers');
      assert.throws(() => RunReader.open(dir), (e: unknown) => e instanceof RunDirError && e.kind === 'corrupt' && /not valid JSON/.test(e.message));
      const dir2 = path.join(runs, 'bad-field');
      runJson(dir2, { ...good(), status: 'exploded' });
      assert.throws(() => RunReader.open(dir2), (e: unknown) => e instanceof RunDirError && e.kind === 'corrupt' && /status/.test(e.message));
      const dir3 = path.join(runs, 'other-format');
      runJson(dir3, { format: 'something-else', version: 1 });
      assert.throws(() => RunReader.open(dir3), (e: unknown) => e instanceof RunDirError && e.kind === 'not-a-run' && /"something-else"/.test(e.message));
    });
  });

  it('lists the runs of a folder, newest first, with unreadable ones last and non-runs left out', () => {
    const a = RunWriter.create(runs, { ...NEW_RUN, id: 'a' }, { now: () => new Date('2026-01-01T00:00:00Z') });
    RunWriter.create(runs, { ...NEW_RUN, id: 'b' }, { now: () => new Date('2026-03-01T00:00:00Z') });
    fs.mkdirSync(path.join(runs, 'not-a-run'));
    fs.mkdirSync(path.join(runs, 'broken'));
    fs.writeFileSync(path.join(runs, 'broken', 'run.json'), '{');
    a.setStatus('completed');
    const list = listRuns(runs, { isAlive: () => true });
    assert.deepEqual(list.map((l) => path.basename(l.dir)), ['b', 'a', 'broken']);
    assert.equal(list[1].status, 'completed');
    assert.equal(list[2].error?.kind, 'corrupt');
    assert.deepEqual(listRuns(path.join(runs, 'nowhere')), []);
  });

  it('shows a running run whose process is gone as interrupted (only on the machine that ran it)', () => {
    const w = RunWriter.create(runs, NEW_RUN, { pid: 999999, host: 'here' });
    const info = RunReader.open(w.dir).info;
    assert.equal(effectiveStatus(info, { hostname: 'here', isAlive: () => false }), 'interrupted');
    assert.equal(effectiveStatus(info, { hostname: 'here', isAlive: () => true }), 'running');
    assert.equal(effectiveStatus(info, { hostname: 'gpu-box', isAlive: () => false }), 'running', 'a pid from another machine says nothing here');
    // A run.json that does not name its machine cannot be checked here: it keeps its recorded status.
    assert.equal(effectiveStatus({ ...info, host: undefined }, { isAlive: () => false }), 'running');
    // And with the real process table: this process is alive, pid DEAD_PID almost surely is not.
    const mine = RunWriter.create(runs, { ...NEW_RUN, id: 'mine' });
    assert.equal(RunReader.open(mine.dir).status(), 'running');
    assert.equal(effectiveStatus({ ...RunReader.open(mine.dir).info, pid: DEAD_PID }), 'interrupted');
    // A run whose trainer is alive here cannot be resumed by another process.
    assert.throws(() => RunWriter.resume(mine.dir, { pid: DEAD_PID }), /still being written by process/);
    w.setStatus('paused', 'engine crashed');
    const paused = RunReader.open(w.dir).info;
    assert.equal(effectiveStatus(paused, { hostname: 'here', isAlive: () => false }), 'paused');
    assert.equal(paused.reason, 'engine crashed');
  });

  it('keeps run.json fields it does not know when it rewrites the manifest', () => {
    const w = RunWriter.create(runs, NEW_RUN);
    const file = path.join(w.dir, 'run.json');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), gpu: 'H100' }));
    RunWriter.open(w.dir).setStatus('stopped', 'user');
    const raw = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(raw.gpu, 'H100');
    assert.equal(raw.status, 'stopped');
  });

  it('never modifies the directory it reads', () => {
    const w = RunWriter.create(runs, NEW_RUN, { now: fixedClock() });
    playRound(w, 1, 1);
    fs.appendFileSync(path.join(w.dir, 'events.jsonl'), '{"torn');
    const before = fingerprint(w.dir);
    const r = RunReader.open(w.dir);
    r.load();
    r.transcript(1);
    r.annotations();
    const f = r.follow({ transcripts: true });
    f.poll();
    f.poll();
    listRuns(runs);
    assert.deepEqual(fingerprint(w.dir), before);
  });
});
