/**
 * Run configs: a config file, and a run directory's config.json (someone else's), which Resume,
 * Evaluate, Cross-Play and Replay build their judge from. Findings 1 (endpoints and keys) and 4
 * (config integers), and what held (unknown keys, unsafe names).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { makeJudge, parseApproval } from '../../extension/trainer/judges';
import { loadRunConfig, parseRunConfig } from '../../extension/trainer/run-config';
import { makeFifo, type BadInputCase } from './harness';

function writeConfig(dir: string, value: unknown, name = 'hostile.absp.json'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

/** A local endpoint that records what it receives (and answers like a guard model). */
async function recordingServer(): Promise<{ url: string; requests: { auth: string | undefined; body: string }[]; close: () => Promise<void> }> {
  const requests: { auth: string | undefined; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests.push({ auth: req.headers.authorization, body });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ choices: [{ text: 'Harmful request: yes\nResponse refusal: yes\nHarmful response: no' }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return { url, requests, close: () => new Promise((r) => server.close(() => r())) };
}

const SECRET_VAR = 'ABSP_TEST_SECRET_TOKEN';
const item = { seed: { id: '1', prompt: 'p', harmful: true, source: 's' }, attackerRaw: null, prompt: 'p', defenderRaw: 'no', response: 'no', attackerWellFormed: null, defenderWellFormed: true };

/** A run directory's config.json naming an http judge with a key variable, and the server it names. */
async function runConfigWithJudge(dir: string, keyVar = SECRET_VAR) {
  const server = await recordingServer();
  const file = path.join(dir, 'run', 'config.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ judge: { kind: 'http', url: server.url, model: 'guard', api_key_env: keyVar } }));
  process.env[SECRET_VAR] = 'secret-value-of-the-user';
  return { server, file, config: parseRunConfig(JSON.parse(fs.readFileSync(file, 'utf8')), file) };
}
type WithServer = Awaited<ReturnType<typeof runConfigWithJudge>>;

const configError = (field: string) => new RegExp(`hostile\\.absp\\.json: invalid run config: .*${field.replace(/\./g, '\\.')}`);

const integerCases: [string, Record<string, unknown>, string][] = [
  ['seeds_per_step: 1e8', { game: { seeds_per_step: 1e8 } }, 'game.seeds_per_step: Too big'],
  ['rounds: 1e9', { rounds: 1e9 }, 'rounds: Too big'],
  ['steps_per_round: 1e12', { steps_per_round: 1e12 }, 'steps_per_round: Too big'],
  ['max_new_tokens.defender: 1e9', { game: { max_new_tokens: { defender: 1e9 } } }, 'game.max_new_tokens.defender: Too big'],
  ['lora.rank: 1e6', { lora: { rank: 1e6 } }, 'lora.rank: Too big'],
  ['rl.group_size: 1e6', { rl: { group_size: 1e6 } }, 'rl.group_size: Too big'],
  ['helpful_sft.batch_size: 1e7', { rl: { helpful_sft: { batch_size: 1e7 } } }, 'rl.helpful_sft.batch_size: Too big'],
  ['evaluation.attacker_samples_per_seed: 1e6', { evaluation: { attacker_samples_per_seed: 1e6 } }, 'evaluation.attacker_samples_per_seed: Too big'],
  ['engine.threads: 1e6', { engine: { kind: 'ort', threads: 1e6 } }, 'engine.threads: Too big'],
  ['torch engine.nproc: 1e6', { engine: { kind: 'torch', nproc: 1e6 } }, 'engine.nproc: Too big'],
  ['torch engine.micro_batch_tokens: 1e12', { engine: { kind: 'torch', micro_batch_tokens: 1e12 } }, 'engine.micro_batch_tokens: Too big'],
  ['judge.timeout_ms: 1e12', { judge: { kind: 'http', url: 'http://127.0.0.1:1/v1', model: 'g', timeout_ms: 1e12 } }, 'judge.timeout_ms: Too big'],
  ['game.temperature: 1e400 (Infinity)', { game: { temperature: '__INF__' } }, 'game.temperature'],
  ['seed: -1', { seed: -1 }, 'seed: Too small'],
];

export const cases: BadInputCase[] = [
  ...integerCases.map(
    ([what, value, field]): BadInputCase => ({
      name: `a config with ${what}: one error naming the field, before any allocation`,
      setup: (dir) => writeConfig(dir, JSON.stringify(value).replace('"__INF__"', '1e400')),
      act: (_dir, file) => loadRunConfig(file as string),
      expect: { error: configError(field) },
      deadlineMs: 1000,
      heapMb: 32,
    }),
  ),
  {
    name: 'seeds_per_step × group_size beyond the rows a step may have',
    setup: (dir) => writeConfig(dir, { game: { seeds_per_step: 4096 }, rl: { group_size: 64 } }),
    act: (_dir, file) => loadRunConfig(file as string),
    expect: { error: /hostile\.absp\.json: game\.seeds_per_step × rl\.group_size is 262144 rows a step, more than the limit of 8192/ },
  },
  {
    name: 'a judge URL with user:password@: refused, so it is never written to config.json, run.json or logs',
    setup: (dir) => writeConfig(dir, { judge: { kind: 'http', url: 'https://alice:hunter2@judge.example/v1', model: 'g' } }),
    act: (_dir, file) => loadRunConfig(file as string),
    expect: { error: /hostile\.absp\.json: invalid run config: judge\.url: must not carry credentials/ },
  },
  {
    name: 'a judge URL that is not http(s) (file://)',
    setup: (dir) => writeConfig(dir, { judge: { kind: 'http', url: 'file:///etc/passwd', model: 'g' } }),
    act: (_dir, file) => loadRunConfig(file as string),
    expect: { error: /judge\.url: must be an http or https URL, not file:/ },
  },
  {
    name: 'judge.api_key_env that is not a variable name',
    setup: (dir) => writeConfig(dir, { judge: { kind: 'http', url: 'http://127.0.0.1:1/v1', model: 'g', api_key_env: '$(id)' } }),
    act: (_dir, file) => loadRunConfig(file as string),
    expect: { error: /judge\.api_key_env: must be the name of an environment variable/ },
  },
  {
    name: 'an unknown key is named (held)',
    setup: (dir) => writeConfig(dir, { judge: { kind: 'sandbox' }, trust_remote_code: true }),
    act: (_dir, file) => loadRunConfig(file as string),
    expect: { error: /hostile\.absp\.json: invalid run config: \(top level\): unknown key "trust_remote_code"/ },
  },
  {
    name: 'a config naming the Python the torch engine runs (engine.python): refused, the executable is the user\'s choice',
    setup: (dir) => writeConfig(dir, { engine: { kind: 'torch', python: '/tmp/not-yours/bin/python' } }),
    act: (_dir, file) => loadRunConfig(file as string),
    expect: { error: /hostile\.absp\.json: invalid run config: engine\.python: a config cannot choose the Python the engine runs .*abspLab\.pythonPath/ },
  },
  {
    name: 'a run name that is a path (held)',
    setup: (dir) => writeConfig(dir, { name: '../../etc' }),
    act: (_dir, file) => loadRunConfig(file as string),
    expect: { error: /hostile\.absp\.json: invalid run config: name: use 1-100 letters/ },
  },
  {
    name: 'the config file is a FIFO: an error at once',
    setup: (dir) => {
      const file = path.join(dir, 'fifo.absp.json');
      makeFifo(file);
      return file;
    },
    act: (_dir, file) => loadRunConfig(file as string),
    expect: { error: /fifo\.absp\.json: cannot read the config: it is a FIFO/ },
    deadlineMs: 1000,
  },
  {
    name: "a run directory's judge posting $SECRET to its own host: refused without the user's approval, nothing sent",
    setup: (dir) => runConfigWithJudge(dir),
    act: async (_dir, s) => {
      const { server, file, config } = s as WithServer;
      try {
        makeJudge(config, { kind: 'run-directory', file, approved: [] });
      } finally {
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(server.requests.length, 0, 'no request reached the endpoint');
        await server.close();
      }
    },
    expect: { error: /run\/config\.json: judge\.url http:\/\/127\.0\.0\.1:\d+\/v1 \(host 127\.0\.0\.1:\d+\) with the key in \$ABSP_TEST_SECRET_TOKEN comes from the run directory, not from you; it was not used/ },
    unchanged: () => [],
  },
  {
    name: 'an approval of the URL with another key variable does not approve sending this one',
    setup: (dir) => runConfigWithJudge(dir),
    act: async (_dir, s) => {
      const { server, file, config } = s as WithServer;
      try {
        makeJudge(config, { kind: 'run-directory', file, approved: [parseApproval(`OTHER_KEY=${server.url}`), parseApproval(server.url)] });
      } finally {
        assert.equal(server.requests.length, 0);
        await server.close();
      }
    },
    expect: { error: /comes from the run directory, not from you/ },
  },
  {
    name: 'the same endpoint approved by the user (VAR=URL): used, with that key and only to that host',
    setup: (dir) => runConfigWithJudge(dir),
    act: async (_dir, s) => {
      const { server, file, config } = s as WithServer;
      try {
        const judge = makeJudge(config, { kind: 'run-directory', file, approved: [parseApproval(`${SECRET_VAR}=${server.url}/`)] });
        const [v] = await judge.judge([item]);
        return { refusal: v.refusal, requests: server.requests.length, auth: server.requests[0]?.auth };
      } finally {
        await server.close();
      }
    },
    expect: { handled: (r) => assert.deepEqual(r, { refusal: true, requests: 1, auth: 'Bearer secret-value-of-the-user' }) },
  },
  {
    name: '--allow-judge with credentials in the URL is refused',
    act: () => parseApproval('KEY=https://u:p@judge.example/v1'),
    expect: { error: /--allow-judge "KEY=https:\/\/u:p@judge\.example\/v1": a URL with credentials is refused/ },
  },
];
