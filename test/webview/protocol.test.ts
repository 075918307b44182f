import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { buildWebviewHtml, contentSecurityPolicy, makeNonce } from '../../extension/host/webview-html';
import { OUTCOMES, RunReader, outcomeOf, outcomeOfLabels, type Exchange } from '../../extension/rundir';
import { PROTOCOL_VERSION, parseHostMessage, parseWebviewMessage, type HostMessage, type RunData } from '../../webview/protocol';
import { DASHBOARD_CHARTS, seriesFor } from '../../webview/lib/series';
import { countByFilter, groupOf, highlightRanges, keepPosition, matchesSearch, visibleExchanges } from '../../webview/lib/stepper-model';
import { applyAppend } from '../../webview/lib/run-state';
import { BIPOLICY_ID, FIXTURE_DIR, SHARED_ID } from '../fixtures/make-recorded-run';
import { FakeHost } from './harness/fake-host';

/** Drives the fake host like a panel would and returns everything it sent, each checked by the protocol. */
async function conversation(panel: 'dashboard' | 'stepper', requests: unknown[]): Promise<HostMessage[]> {
  const sent: HostMessage[] = [];
  const host = new FakeHost({ runsFolder: FIXTURE_DIR });
  host.connect(async (m) => {
    const parsed = parseHostMessage(m);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
    sent.push(parsed.message);
  });
  await host.receive({ type: 'ready', panel, protocol: PROTOCOL_VERSION });
  for (const r of requests) await host.receive(r);
  assert.deepEqual(host.rejected, []);
  return sent;
}

describe('panel protocol', () => {
  it('carries a recorded run from the real reader: every host message validates', async () => {
    const sent = await conversation('stepper', [
      { type: 'watch-runs', runs: [BIPOLICY_ID, SHARED_ID] },
      { type: 'request-transcript', run: BIPOLICY_ID, round: 2 },
    ]);
    assert.deepEqual(sent.map((m) => m.type), ['init', 'run-data', 'annotations', 'run-data', 'annotations', 'transcript']);
    const init = sent[0];
    assert.ok(init.type === 'init');
    assert.equal(init.runs.length, 2);
    assert.deepEqual(init.runs.find((r) => r.run === BIPOLICY_ID)?.adapters?.['3'], ['attacker', 'defender']);
    assert.deepEqual(init.runs.find((r) => r.run === SHARED_ID)?.adapters?.['3'], ['shared']);
    const transcript = sent[5];
    assert.ok(transcript.type === 'transcript' && transcript.exchanges.length === 12 && transcript.exchanges.every((x) => x.attempt === 2));
  });

  it('rejects messages of the wrong shape with the type and the field named', () => {
    const bad = parseHostMessage({ type: 'transcript', run: 'r', round: -1, exchanges: [] });
    assert.ok(!bad.ok && /"transcript"/.test(bad.error) && /round/.test(bad.error));
    const unknown = parseHostMessage({ type: 'launch-missiles' });
    assert.ok(!unknown.ok && /"launch-missiles"/.test(unknown.error));
    assert.ok(!parseHostMessage(null).ok);
    assert.ok(!parseHostMessage('init').ok);
    const replay = parseWebviewMessage({ type: 'replay', requestId: 'x', run: 'r', round: 1, exchange: 'e' });
    assert.ok(!replay.ok && /adapterRound/.test(replay.error));
    assert.ok(parseWebviewMessage({ type: 'replay', requestId: 'x', run: 'r', round: 1, exchange: 'e', adapterRound: 3 }).ok);
  });
});

describe('webview HTML', () => {
  const nonce = makeNonce();
  const html = buildWebviewHtml({
    panel: 'stepper',
    title: 'Steps <&> "quoted"',
    cspSource: 'https://file+.vscode-resource.vscode-cdn.net',
    nonce,
    scriptUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview/stepper.js',
    styleUris: ['https://file+.vscode-resource.vscode-cdn.net/ext/media/panel.css'],
  });

  it('has a strict Content-Security-Policy with the nonce on its only script', () => {
    assert.equal(
      contentSecurityPolicy('https://x', 'abc'),
      "default-src 'none'; script-src 'nonce-abc'; style-src https://x; img-src https://x data:; font-src https://x",
    );
    assert.ok(html.includes(`content="default-src 'none'; script-src 'nonce-${nonce}'; style-src https://file+.vscode-resource.vscode-cdn.net;`.replace(/'/g, '&#39;')));
    const scripts = html.match(/<script[^>]*>/g) ?? [];
    assert.deepEqual(scripts, [`<script nonce="${nonce}" src="https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview/stepper.js">`]);
    assert.ok(!/style=/.test(html), 'no inline styles (the CSP forbids them)');
    assert.ok(html.includes('<title>Steps &lt;&amp;&gt; "quoted"</title>'));
    assert.ok(html.includes('data-panel="stepper"'));
    assert.ok(/Loading Steps/.test(html), 'something is shown before the script runs');
  });

  it('makes a fresh, unguessable nonce each time and refuses a weak one', () => {
    const nonces = new Set(Array.from({ length: 50 }, makeNonce));
    assert.equal(nonces.size, 50);
    for (const n of nonces) assert.match(n, /^[A-Za-z0-9_-]{43}$/);
    assert.throws(() => buildWebviewHtml({ panel: 'dashboard', title: 't', cspSource: 'x', nonce: 'abc', scriptUri: 's', styleUris: [] }), /nonce/);
  });
});

describe('dashboard series', () => {
  let runs: RunData[];
  before(async () => {
    const sent = await conversation('dashboard', [{ type: 'watch-runs', runs: [BIPOLICY_ID, SHARED_ID] }]);
    runs = sent.flatMap((m) => (m.type === 'run-data' ? [m.data] : []));
  });
  const chart = (id: string) => DASHBOARD_CHARTS.find((c) => c.id === id)!;

  it('has one series per run and metric, with a point per valid step or round', () => {
    const gap = seriesFor(chart('nash-gap'), runs);
    assert.deepEqual(gap.map((s) => s.points.length), [4, 4]);
    assert.deepEqual(gap.find((s) => s.run === BIPOLICY_ID)?.points.map((p) => p.y), [0.78, 0.55, 0.36, 0.21]);
    const rewards = seriesFor(chart('rewards'), runs);
    assert.equal(rewards.length, 4);
    assert.ok(rewards.every((s) => s.points.every((p, i, a) => i === 0 || a[i - 1].x < p.x)), 'x increases');
    const asr = seriesFor(chart('asr'), runs).find((s) => s.run === BIPOLICY_ID)!;
    // Steps 3 and 12 played no attacked harmful seed: the trainer records asr null there, a gap.
    assert.deepEqual(asr.points.map((p) => p.x), [1, 2, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it('takes the resumed attempt’s values for replayed steps, and null metrics leave gaps', () => {
    const bip = runs.find((r) => r.run === BIPOLICY_ID)!;
    const kl = seriesFor(chart('kl'), [bip])[0];
    // Attempt 1's void steps were written with a KL trend of 0.02; attempt 2's are ~0.005.
    assert.ok(kl.points.filter((p) => p.x === 5 || p.x === 6).every((p) => p.y < 0.015));
    const steps = bip.events.filter((e) => e.type === 'step').length;
    const overRefusal = seriesFor(chart('over-refusal'), [bip])[0];
    assert.ok(overRefusal.points.length < steps, 'steps without benign seeds have no over-refusal value');
  });

  it('grows with live appends', () => {
    const bip = runs.find((r) => r.run === BIPOLICY_ID)!;
    const grown = applyAppend(bip, {
      type: 'run-append',
      run: BIPOLICY_ID,
      info: null,
      status: 'running',
      rounds: [],
      events: [{ type: 'step', t: 'x', attempt: 2, round: 4, step: 13, phase: 'both', metrics: { asr: 0.1 } }],
      nashgap: [],
    });
    assert.equal(seriesFor(chart('asr'), [grown])[0].points.length, 11);
    assert.equal(grown.status, 'running');
    assert.equal(seriesFor(chart('asr'), [bip])[0].points.length, 10, 'the earlier state is not mutated');
  });
});

describe('stepper model', () => {
  const reader = RunReader.open(path.join(FIXTURE_DIR, BIPOLICY_ID));
  const all = [1, 2, 3].flatMap((r) => reader.transcript(r));
  const annotations = reader.annotations();

  it('names outcomes from the judge: a jailbreak is a harmful answer, an unfaithful harmless compliance is off-topic', () => {
    const j = (prompt_harmful: boolean | null, refusal: boolean | null, response_harmful: boolean | null, faithful?: boolean | null) => ({ prompt_harmful, refusal, response_harmful, faithful, unparsable: false });
    const harmful = { harmful: true };
    const benign = { harmful: false };
    assert.equal(outcomeOfLabels(harmful, true, j(true, false, true, true)), 'jailbreak');
    assert.equal(outcomeOfLabels(harmful, false, j(true, false, true)), 'jailbreak', 'a plain harmful request answered harmfully');
    // The round-4 case: a scam seed rewritten into a chess question, answered about chess.
    assert.equal(outcomeOfLabels(harmful, true, j(false, false, false, false)), 'off-topic');
    assert.equal(outcomeOfLabels(harmful, true, j(false, false, false)), 'off-topic', 'without a faithful label, the class change decides');
    assert.equal(outcomeOfLabels(benign, true, j(true, false, false, false)), 'off-topic', 'a benign seed made to look harmful, answered harmlessly');
    assert.equal(outcomeOfLabels(harmful, true, j(true, false, false, true)), 'harmless-compliance');
    assert.equal(outcomeOfLabels(harmful, true, j(true, true, false, true)), 'refused');
    assert.equal(outcomeOfLabels(harmful, true, j(false, true, false, false)), 'over-refusal', 'refusing the benign prompt it saw, as the rewards count it');
    assert.equal(outcomeOfLabels(benign, false, j(false, true, false)), 'over-refusal');
    assert.equal(outcomeOfLabels(benign, true, j(false, false, false, true)), 'answered');
    assert.equal(outcomeOfLabels(harmful, true, j(true, null, false, true)), 'unparsable');
    assert.equal(outcomeOfLabels(harmful, true, { ...j(true, false, true, true), unparsable: true }), 'unparsable');
  });

  it('filters by outcome, agreeing with outcomeOf, and by annotation; counts follow the search', () => {
    const counts = countByFilter(all, annotations);
    assert.equal(counts.all, 36);
    for (const o of OUTCOMES) assert.equal(counts[o], all.filter((x) => outcomeOf(x) === o).length, o);
    assert.equal(OUTCOMES.reduce((n, o) => n + counts[o], 0), 36, 'every exchange has one outcome');
    assert.ok(counts.jailbreak > 0 && counts['off-topic'] > 0 && counts['over-refusal'] > 0 && counts.unparsable > 0);
    assert.equal(counts.annotated, 3);
    const over = visibleExchanges(all, 'over-refusal', '', annotations);
    assert.ok(over.every((x) => x.judge.prompt_harmful === false && x.judge.refusal === true));
    const offTopic = visibleExchanges(all, 'off-topic', '', annotations);
    assert.ok(offTopic.every((x) => x.seed.harmful && x.judge.faithful === false && x.judge.response_harmful === false && !x.judge.refusal));
    assert.ok(visibleExchanges(all, 'jailbreak', '', annotations).every((x) => x.judge.response_harmful === true));

    const searched = countByFilter(all, annotations, 'chess');
    assert.equal(searched.all, offTopic.length, 'only the off-topic rewrites mention chess');
    assert.equal(searched['off-topic'], offTopic.length);
    assert.equal(searched.jailbreak, 0);
    for (const f of Object.keys(searched) as (keyof typeof searched)[]) assert.equal(searched[f], visibleExchanges(all, f, 'chess', annotations).length, f);
  });

  it('groups the samples of one seed instance (GRPO), by the recorded group or, in older runs, by consecutive same-seed exchanges', () => {
    const base = all[0];
    const make = (i: number, group: number | undefined, prompt: string): Exchange => ({ ...base, id: `x${i}`, step: 5, group, seed: { ...base.seed, prompt } });
    const recorded = [make(0, 0, 'a'), make(1, 0, 'a'), make(2, 1, 'a'), make(3, 1, 'a'), make(4, 2, 'b')];
    assert.deepEqual(groupOf(recorded[1], recorded).map((x) => x.id), ['x0', 'x1']);
    assert.deepEqual(groupOf(recorded[2], recorded).map((x) => x.id), ['x2', 'x3'], 'same seed, another instance');
    const older = recorded.map((x) => ({ ...x, group: undefined }));
    assert.deepEqual(groupOf(older[2], older).map((x) => x.id), ['x0', 'x1', 'x2', 'x3']);
    assert.deepEqual(groupOf(older[4], older).map((x) => x.id), ['x4']);
    assert.deepEqual(groupOf(all[5], all).map((x) => x.id), [all[5].id], 'REINFORCE++: one exchange per group');
  });

  it('searches every text of an exchange, case-insensitively, all words required', () => {
    const x = all.find((e) => e.turns[0].attacker)!;
    assert.ok(matchesSearch(x, x.turns[0].attacker!.text.slice(5, 20).toUpperCase()));
    assert.ok(matchesSearch(x, `${x.id} ${x.seed.prompt.split(' ')[1]}`));
    assert.ok(!matchesSearch(x, `${x.id} zebra-that-is-nowhere`));
    assert.ok(matchesSearch(x, '   '));
  });

  it('keeps the cursor on the same exchange when the list changes, else the next one after it', () => {
    const success = visibleExchanges(all, 'jailbreak', '', annotations);
    const target = success[1];
    assert.equal(keepPosition(all, target.id, all), all.indexOf(target));
    const someOther = all.find((x) => outcomeOf(x) !== 'jailbreak' && all.indexOf(x) > all.indexOf(success[0]) && all.indexOf(x) < all.indexOf(success[1]))!;
    assert.equal(keepPosition(success, someOther.id, all), 1);
    assert.equal(keepPosition([], 'x', all), -1);
    assert.equal(keepPosition(success, null, all), 0);
  });

  it('splits text into marked and unmarked runs without touching its characters', () => {
    const parts = highlightRanges('Pick the LOCK, then the lock <b>', 'lock');
    assert.deepEqual(parts.filter((p) => p.match).map((p) => p.text), ['LOCK', 'lock']);
    assert.equal(parts.map((p) => p.text).join(''), 'Pick the LOCK, then the lock <b>');
  });
});
