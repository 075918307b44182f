/** What a finished child process means, from run.json, the exit and the last output. */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { describeOutcome, lastErrorLine } from '../../extension/host/job-outcome';
import { resolveSettings } from '../../extension/host/settings';
import { findExecutable, resolveNodeCommand, resolvePython, MissingExecutableError } from '../../extension/host/executables';
import type { RunInfo } from '../../extension/rundir';

const info = (o: Partial<RunInfo>): RunInfo => ({
  format: 'absp-run',
  version: 1,
  id: 'r1',
  name: 'r1',
  created: '2026-01-01T00:00:00Z',
  updated: '2026-01-01T00:00:00Z',
  status: 'running',
  reason: null,
  attempt: 1,
  pid: 1,
  mode: 'bipolicy',
  engine: 'ort',
  base_model: 'builtin:sandbox',
  rounds_planned: 4,
  rounds_completed: 2,
  roles: ['attacker', 'defender'],
  ...o,
});

describe('host: job outcomes, settings and executables', () => {
  it('reads the outcome from run.json first, the exit second, the last output third', () => {
    const base = { title: 'run x', signal: null, logTail: [] as string[] };
    assert.equal(describeOutcome({ ...base, exitCode: 0, runs: [{ dir: '/r', info: info({ status: 'completed', rounds_completed: 4 }) }] }).status, 'completed');
    const paused = describeOutcome({ ...base, exitCode: 1, runs: [{ dir: '/r', info: info({ status: 'paused', reason: 'judge unreachable (in round 2, step 12)' }) }] });
    assert.deepEqual([paused.status, paused.message], ['paused', 'Run r1 paused: judge unreachable (in round 2, step 12). Fix the cause and resume it.']);
    const failed = describeOutcome({ ...base, exitCode: 1, runs: [{ dir: '/r', info: info({ status: 'failed', reason: 'TypeError: x is undefined' }) }] });
    assert.equal(failed.message, 'Run r1 failed: TypeError: x is undefined.');
    const crashed = describeOutcome({ ...base, exitCode: null, signal: 'SIGSEGV', runs: [{ dir: '/r', info: info({}) }], logTail: ['bipolicy 10/40', ''] });
    assert.equal(crashed.status, 'crashed');
    assert.match(crashed.message, /was killed by SIGSEGV without recording why \(last output: bipolicy 10\/40\)/);
    // Baselines: the first run that did not complete decides.
    const withBaseline = describeOutcome({ ...base, exitCode: 1, runs: [{ dir: '/a', info: info({ status: 'completed' }) }, { dir: '/b', info: info({ id: 'b', status: 'failed', reason: 'oops' }) }] });
    assert.deepEqual([withBaseline.status, withBaseline.runDir], ['failed', '/b']);
    const noRun = describeOutcome({ ...base, exitCode: 1, runs: [], logTail: ['some noise', 'absp: cfg.json: invalid run config: rounds: too small', ''] });
    assert.deepEqual([noRun.status, noRun.message], ['failed', 'run x failed: cfg.json: invalid run config: rounds: too small']);
    assert.equal(describeOutcome({ ...base, exitCode: 0, runs: [], targetDir: '/r' }).runDir, '/r');
    assert.match(describeOutcome({ ...base, exitCode: null, runs: [], spawnError: 'spawn ENOENT' }).message, /could not start: spawn ENOENT/);
    assert.equal(lastErrorLine(['', '  ']), null);
  });

  it('resolves settings against the workspace and falls back to sane values', () => {
    const s = resolveSettings({ runsFolder: 'out/runs', defaultEngine: 'cuda', nodePath: ' ', pythonPath: '', configGlob: 3 }, '/ws', '/storage');
    assert.deepEqual(s, { runsFolder: '/ws/out/runs', defaultEngine: 'ort', nodePath: '', pythonPath: '', configGlob: '**/*.absp.json' });
    assert.equal(resolveSettings({ runsFolder: '/abs/runs' }, '/ws', '/storage').runsFolder, '/abs/runs');
    assert.equal(resolveSettings({}, undefined, '/storage').runsFolder, '/storage/runs', 'no workspace: runs go to the extension storage');
    assert.equal(resolveSettings({ defaultEngine: 'torch' }, '/ws', '/s').defaultEngine, 'torch');
  });

  it('finds executables or names the setting to fix', () => {
    assert.equal(findExecutable(path.basename(process.execPath), path.dirname(process.execPath)), process.execPath);
    assert.equal(findExecutable('node', '/nowhere:/also/nowhere'), null);
    assert.ok(findExecutable('sh'));
    assert.equal(findExecutable('/definitely/not/here'), null);
    const own = resolveNodeCommand('', { execPath: process.execPath, electron: '30.0.0' });
    assert.deepEqual(own.env, { ELECTRON_RUN_AS_NODE: '1' });
    assert.match(own.description, /Electron 30\.0\.0, run as Node/);
    assert.equal(resolveNodeCommand(process.execPath).command, process.execPath);
    assert.throws(() => resolvePython('/no/python3'), (e: Error) => e instanceof MissingExecutableError && e.setting === 'abspLab.pythonPath' && /python executable "\/no\/python3" does not exist/.test(e.message));
    assert.throws(() => resolveNodeCommand('/etc'), /is not an executable file/);
  });
});
