/**
 * The panels' colours and run identities without a browser: the palette of each default VS Code theme
 * (the variables of test/webview/harness/themes.json, as VS Code 1.139 gives them to a webview) is
 * readable and distinct, heatmap scales separate small rates and carry readable text, runs keep their
 * colour, the runs table sorts and formats.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { summarise } from '../../extension/host/run-catalog';
import { contrast, deltaE, isLightKind, minimumContrast, rateScale, readable, signedScale, textOn, type ThemeKind } from '../../webview/lib/palette';
import { assignColours } from '../../webview/lib/run-identity';
import { formatCell, nextSort, runRows, sortRows, sweepRowKey, sweepRows, trend, RUNS_TABLE_METRICS } from '../../webview/lib/runs-table';
import { DASHBOARD_CHARTS, smooth, sweepSeriesFor } from '../../webview/lib/series';
import type { SweepOverview } from '../../webview/protocol';
import { chartThemeFrom } from '../../webview/lib/theme';
import { BIPOLICY_ID, FIXTURE_DIR, SHARED_ID } from '../fixtures/make-recorded-run';
import { THEMES, type ThemeName } from './harness/themes';

const KINDS: Record<ThemeName, ThemeKind> = { dark: 'dark', light: 'light', 'high-contrast': 'high-contrast', 'high-contrast-light': 'high-contrast-light' };
const themeOf = (name: ThemeName) => chartThemeFrom((n, fallback) => THEMES[name].vars[n] ?? fallback, KINDS[name]);

describe('panel colours', () => {
  for (const name of Object.keys(THEMES) as ThemeName[]) {
    it(`${name} theme: eight run colours, each readable on the background and distinct from the others`, () => {
      const t = themeOf(name);
      assert.equal(t.palette.length, 8);
      for (const c of t.palette) assert.ok(contrast(c, t.background) >= minimumContrast(t.kind), `${c} on ${t.background}: ${contrast(c, t.background).toFixed(2)}`);
      for (let i = 0; i < t.palette.length; i++) {
        for (let j = i + 1; j < t.palette.length; j++) assert.ok(deltaE(t.palette[i], t.palette[j]) >= 10, `${t.palette[i]} and ${t.palette[j]} look alike`);
      }
      assert.ok(contrast(t.foreground, t.background) >= 4.5, 'axis and legend text');
      assert.ok(contrast(t.muted, t.background) >= 4.5, 'axis titles');
    });

    it(`${name} theme: heatmap scales tell 0% from 16%, and every cell's text is readable`, () => {
      const t = themeOf(name);
      const rate = rateScale(t.kind);
      assert.ok(deltaE(rate.colour(0), rate.colour(0.16)) >= 10, `0% ${rate.colour(0)} and 16% ${rate.colour(0.16)}`);
      for (let v = 0; v <= 1.0001; v += 0.01) {
        const fill = rate.colour(v);
        assert.ok(contrast(textOn(fill, [t.foreground, t.background, '#000000', '#ffffff']), fill) >= 4.5, `text on ${fill} (${v})`);
        const signed = signedScale(t.kind).colour(2 * v - 1);
        assert.ok(contrast(textOn(signed, [t.foreground, t.background, '#000000', '#ffffff']), signed) >= 4.5, `text on ${signed}`);
      }
      // Higher rates are further from the background: the eye reads the hot end first.
      const distance = (v: number) => deltaE(rate.colour(v), t.background);
      assert.ok(distance(1) > distance(0.5) && distance(0.5) > distance(0), `${name}: ${[0, 0.5, 1].map(distance).map((d) => d.toFixed(1))}`);
    });
  }

  it('makes the translucent or pale orange of the light themes a readable orange, keeping its hue', () => {
    const t = themeOf('light');
    const orange = t.palette[1];
    assert.ok(contrast('#d18616', '#ffffff') < 3, 'the original is too pale on white');
    assert.ok(contrast(orange, '#ffffff') >= 3.5);
    assert.ok(deltaE(orange, '#d18616') < 15, `still orange: ${orange}`);
    assert.equal(readable('#1a1a1a', '#ffffff', 3.5), '#1a1a1a', 'a readable colour is left alone');
    assert.ok(isLightKind('high-contrast-light') && !isLightKind('high-contrast'));
  });
});

describe('run colours', () => {
  it('gives each run a colour from its id that stays when runs are added, and never two runs one colour while there are free ones', () => {
    const runs = ['2026-11-23T22-50-01-a', '2026-11-23T23-20-07-b', '2026-11-24T08-00-00-c'].map((id) => ({ run: `/runs/${id}`, id }));
    const first = assignColours(runs.slice(0, 2), {}, 8);
    assert.deepEqual(assignColours(runs.slice(0, 2), {}, 8), first, 'from the ids alone: the same in every panel');
    const grown = assignColours(runs, first, 8);
    for (const r of runs.slice(0, 2)) assert.equal(grown[r.run], first[r.run], 'adding a run recolours nothing');
    const many = Array.from({ length: 8 }, (_, i) => ({ run: `r${i}`, id: `run-${i}` }));
    assert.equal(new Set(Object.values(assignColours(many, {}, 8))).size, 8, 'eight runs, eight colours');
    const reordered = assignColours([...runs].reverse(), grown, 8);
    assert.deepEqual(reordered, grown, 'the order of the list does not matter');
    const gone = assignColours([runs[2]], grown, 8);
    assert.equal(gone[runs[0].run], grown[runs[0].run], 'a run that left the list keeps its slot for when it comes back');
  });
});

describe('runs table', () => {
  const summaries = [summarise(path.join(FIXTURE_DIR, SHARED_ID)).summary, summarise(path.join(FIXTURE_DIR, BIPOLICY_ID)).summary];
  const rows = runRows(summaries, (run) => path.basename(run));

  it('has before (round 0) → after (last round) of the headline metrics, read from round.json', () => {
    assert.deepEqual(RUNS_TABLE_METRICS.map((m) => m.key), ['asr/best_response', 'over_refusal', 'capability', 'exploitability/defender', 'nash_gap']);
    const bip = rows.find((r) => r.label === BIPOLICY_ID)!;
    assert.deepEqual(bip.cells.nash_gap, { before: 0.78, after: 0.21, afterRound: 3 });
    assert.equal(formatCell('nash_gap', bip.cells.nash_gap), '0.78 → 0.21');
    assert.equal(formatCell('asr/best_response', bip.cells['asr/best_response']), '82.0% → 27.0%');
    assert.equal(trend(RUNS_TABLE_METRICS.find((m) => m.key === 'nash_gap')!, bip.cells.nash_gap), 'better');
    assert.equal(trend(RUNS_TABLE_METRICS.find((m) => m.key === 'capability')!, bip.cells.capability), 'worse');
    assert.equal(formatCell('exploitability/defender', bip.cells['exploitability/defender']), '0.179', 'not measured before training: the after value alone');
  });

  it('sorts by a metric (better end first), then reverses; missing values and broken runs last', () => {
    const broken = { ...rows[0], key: 'broken', label: 'broken', error: { kind: 'corrupt' as const, message: 'x' } };
    const all = [...rows, broken];
    const byGap = nextSort(null, 'nash_gap');
    assert.deepEqual(byGap, { key: 'nash_gap', dir: 'asc' });
    assert.deepEqual(sortRows(all, byGap).map((r) => r.label), [BIPOLICY_ID, SHARED_ID, 'broken']);
    assert.deepEqual(sortRows(all, nextSort(byGap, 'nash_gap')).map((r) => r.label), [SHARED_ID, BIPOLICY_ID, 'broken']);
    assert.deepEqual(nextSort(null, 'capability'), { key: 'capability', dir: 'desc' }, 'higher is better');
    assert.deepEqual(sortRows(all, { key: 'label', dir: 'asc' }).map((r) => r.label), [BIPOLICY_ID, SHARED_ID, 'broken']);
  });

  it('has a row per method of a sweep: the median over seeds, before → after, with the 95% interval of the after value', () => {
    const mi = (median: number | null, low: number | null, high: number | null, n = 5) => ({ median, low, high, n });
    const sweep: SweepOverview = {
      sweep: '/runs/s',
      label: 'sweep · 25 Nov 09:00',
      id: 's',
      name: 'sweep',
      created: null,
      status: 'running',
      seeds: [1, 2, 3, 4, 5, 6],
      modes: [
        {
          mode: 'bipolicy',
          seeds: [1, 2, 3, 4, 5],
          planned: 6,
          started: 6,
          before: { nash_gap: mi(0.78, 0.7, 0.8), over_refusal: mi(0.1, 0.05, 0.2) },
          after: { nash_gap: mi(0.2, 0.12, 0.3), over_refusal: mi(null, null, null, 0) },
          curves: { nash_gap: [{ round: 0, ...mi(0.78, 0.7, 0.8) }, { round: 1, ...mi(0.5, null, null, 1) }] },
        },
      ],
      error: null,
    };
    const [row] = sweepRows([sweep]);
    assert.equal(row.key, sweepRowKey('/runs/s', 'bipolicy'));
    assert.equal(row.kind, 'sweep');
    assert.deepEqual(row.sweep, { key: '/runs/s', mode: 'bipolicy', seeds: 5, planned: 6, started: 6 });
    assert.equal(formatCell('nash_gap', row.cells.nash_gap), '0.78 → 0.2 [0.12, 0.3]');
    assert.equal(trend(RUNS_TABLE_METRICS.find((m) => m.key === 'nash_gap')!, row.cells.nash_gap), 'better');
    assert.equal(formatCell('over_refusal', row.cells.over_refusal), '10.0% → —', 'no seed measured it after');
    assert.equal(row.cells.capability.after, null);
    // Sorted among runs by its median; a sweep that cannot be read is one row with the reason.
    const broken = sweepRows([{ ...sweep, sweep: '/runs/b', modes: [], error: { kind: 'corrupt', message: 'sweep.json is corrupt' } }]);
    assert.equal(broken.length, 1);
    assert.equal(broken[0].error?.message, 'sweep.json is corrupt');
    assert.deepEqual(sortRows([...rows, row], nextSort(null, 'nash_gap')).map((r) => r.key)[0], row.key);
    // Its Nash-gap curve: the median line with the band, a gap where the interval is unknown; none per step.
    const nash = DASHBOARD_CHARTS.find((c) => c.id === 'nash-gap')!;
    const [series] = sweepSeriesFor(nash, [{ key: row.key, label: sweep.label, summary: sweep.modes[0] }]);
    assert.deepEqual(series.points, [{ x: 0, y: 0.78 }, { x: 1, y: 0.5 }]);
    assert.deepEqual(series.band!.low.map((p) => p.y), [0.7, Number.NaN]);
    assert.equal(series.label, 'sweep · 25 Nov 09:00 · bipolicy, median of 5 seeds');
    assert.deepEqual(sweepSeriesFor(DASHBOARD_CHARTS.find((c) => c.id === 'rewards')!, [{ key: row.key, label: sweep.label, summary: sweep.modes[0] }]), []);
  });

  it('smooths per-step curves like TensorBoard: debiased, weight 0 leaves them alone', () => {
    const pts = [1, 1, 1, 5].map((y, i) => ({ x: i + 1, y }));
    assert.deepEqual(smooth(pts, 0), pts);
    const s = smooth(pts, 0.5);
    assert.deepEqual(s.slice(0, 3).map((p) => p.y), [1, 1, 1], 'no pull towards zero at the start');
    assert.ok(s[3].y > 1 && s[3].y < 5);
  });
});
