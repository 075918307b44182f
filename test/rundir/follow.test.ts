import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunReader, RunWriter, type RunEvent } from '../../extension/rundir';
import { DEAD_PID, NEW_RUN, exchange, fixedClock, tempDir } from './helpers';

describe('run directory: following a live run', () => {
  let runs: string;
  beforeEach(() => {
    runs = tempDir();
  });
  afterEach(() => fs.rmSync(runs, { recursive: true, force: true }));

  const steps = (events: RunEvent[]) => events.filter((e) => e.type === 'step').map((e) => (e.type === 'step' ? e.step : -1));

  it('returns what was appended since the last poll, and a partial last line only once complete', () => {
    const w = RunWriter.create(runs, NEW_RUN, { now: fixedClock() });
    const f = RunReader.open(w.dir).follow({ transcripts: true });
    const first = f.poll();
    assert.equal(first.reset, true, 'the first poll returns the whole state');
    assert.equal(first.info?.id, 'test-run');
    assert.deepEqual(first.events, []);

    w.event({ type: 'step', round: 1, step: 1, phase: 'both', metrics: {} });
    w.exchange(exchange(1, 1, 0));
    const second = f.poll();
    assert.equal(second.reset, false);
    assert.equal(second.info, null, 'run.json did not change');
    assert.deepEqual(steps(second.events), [1]);
    assert.deepEqual(second.exchanges.map((x) => x.id), ['r1-s1-0']);

    const line = JSON.stringify({ type: 'step', t: 'x', attempt: 1, round: 1, step: 2, phase: 'both', metrics: {} });
    const file = path.join(w.dir, 'events.jsonl');
    fs.appendFileSync(file, line.slice(0, 25));
    assert.deepEqual(f.poll().events, [], 'half a line is not a record yet');
    fs.appendFileSync(file, line.slice(25) + '\n');
    assert.deepEqual(steps(f.poll().events), [2], 'the completed line arrives, once');
    assert.deepEqual(f.poll().events, []);

    fs.appendFileSync(file, 'not json\n');
    w.event({ type: 'step', round: 1, step: 3, phase: 'both', metrics: {} });
    const damaged = f.poll();
    assert.deepEqual(steps(damaged.events), [3]);
    assert.equal(damaged.skipped.length, 1);
    assert.equal(damaged.skipped[0].line, 3);

    w.completeRound(1, { steps: [1, 3], roles: [], metrics: { nash_gap: 0.4 }, exchanges: 1 });
    const done = f.poll();
    assert.deepEqual(done.rounds.map((r) => r.round), [1]);
    assert.equal(done.info?.rounds_completed, 1);
    w.writeCrossplay({ version: 1, method: 'exact', attackers: [], defenders: [], asr: [], samples: 0 });
    assert.deepEqual(f.poll().crossplay?.asr, []);
    assert.equal(f.poll().crossplay, undefined, 'unchanged documents are not resent');
  });

  it('starts over when a resume voids records it already returned', () => {
    const w = RunWriter.create(runs, NEW_RUN, { now: fixedClock(), pid: DEAD_PID });
    w.event({ type: 'step', round: 1, step: 1, phase: 'both', metrics: {} });
    w.completeRound(1, { steps: [1, 1], roles: [], metrics: {}, exchanges: 0 });
    w.event({ type: 'step', round: 2, step: 2, phase: 'both', metrics: { attempt: 1 } });
    w.exchange(exchange(2, 2, 0));
    const f = RunReader.open(w.dir).follow({ transcripts: true });
    assert.deepEqual(steps(f.poll().events), [1, 2]);

    const again = RunWriter.resume(w.dir, { now: fixedClock('2026-02-01T00:00:00Z'), pid: DEAD_PID + 1 });
    again.event({ type: 'step', round: 2, step: 2, phase: 'both', metrics: { attempt: 2 } });
    const delta = f.poll();
    assert.equal(delta.reset, true);
    assert.equal(delta.info?.attempt, 2);
    const step2 = delta.events.filter((e) => e.type === 'step' && e.step === 2);
    assert.equal(step2.length, 1, 'round 2 appears once');
    assert.equal(step2[0].attempt, 2);
    assert.deepEqual(delta.exchanges, [], "attempt 1's exchange of round 2 is void");
    assert.deepEqual(steps(delta.events), [1, 2]);
    assert.deepEqual(delta.rounds.map((r) => r.round), [1]);
  });

  it('follows another process writing as fast as it can: every record exactly once, in order', async function () {
    this.timeout(60000);
    const w = RunWriter.create(runs, NEW_RUN);
    const f = RunReader.open(w.dir).follow({ transcripts: true });
    const count = 600;
    const child = spawn(process.execPath, [require.resolve('tsx/cli'), path.join(__dirname, 'live-writer.ts'), w.dir, String(count)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    let running = true;
    void exited.then(() => (running = false));

    const seen: number[] = [];
    const exchanges: string[] = [];
    let polls = 0;
    let skipped = 0;
    let status: string | undefined;
    let tornSeen = 0;
    const eventsFile = path.join(w.dir, 'events.jsonl');
    while (running) {
      const text = fs.existsSync(eventsFile) ? fs.readFileSync(eventsFile, 'utf8') : '';
      if (text.length && !text.endsWith('\n')) tornSeen++;
      const d = f.poll();
      status = d.info?.status ?? status;
      polls++;
      seen.push(...steps(d.events));
      exchanges.push(...d.exchanges.map((x) => x.id));
      skipped += d.skipped.length;
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal(await exited, 0, stderr);
    const last = f.poll();
    seen.push(...steps(last.events));
    exchanges.push(...last.exchanges.map((x) => x.id));
    skipped += last.skipped.length;
    status = last.info?.status ?? status;

    assert.equal(skipped, 0, 'no line was ever read half-written');
    assert.deepEqual(seen, Array.from({ length: count }, (_, i) => i + 1));
    assert.equal(exchanges.length, count / 10);
    assert.equal(new Set(exchanges).size, exchanges.length);
    assert.equal(status, 'completed');
    assert.ok(polls > 5, `the reader polled while the writer wrote (${polls} polls)`);
    assert.ok(tornSeen > 0, 'the reader met half-written lines');
  });
});
