/** The statistics behind every interval the project reports (extension/util/stats.ts). */
import { strict as assert } from 'node:assert';
import { Rng } from '../../extension/util/rng';
import { bootstrapMedian, pairedComparison, wilson } from '../../extension/util/stats';

describe('statistics', () => {
  it('the median over seeds, with a bootstrap interval that contains it and is reproducible', () => {
    const values = [0.704, 0.633, 0.068, 0.263, 0.281, 0.1, 0.2, 0.05];
    const m = bootstrapMedian(values);
    assert.equal(m.n, 8);
    assert.ok(Math.abs(m.median - (0.2 + 0.263) / 2) < 1e-12);
    assert.ok(m.low <= m.median && m.median <= m.high, JSON.stringify(m));
    assert.ok(m.low >= 0.05 && m.high <= 0.704);
    assert.deepEqual(bootstrapMedian(values), m);
    // Order does not matter; non-finite values (a seed without the metric) are left out.
    assert.deepEqual(bootstrapMedian([...values].reverse()), m);
    assert.equal(bootstrapMedian([...values, NaN]).n, 8);
    assert.deepEqual(bootstrapMedian([0.3, 0.3, 0.3]), { median: 0.3, low: 0.3, high: 0.3, n: 3 });
    assert.ok(Number.isNaN(bootstrapMedian([]).median));
  });

  it('the 95% bootstrap interval of a median covers the true median in most repetitions', () => {
    // Uniform(0, 1) has median 0.5: with 15 draws the percentile bootstrap covers it about 95% of the time.
    const rng = new Rng(7);
    let covered = 0;
    const trials = 200;
    for (let t = 0; t < trials; t++) {
      const m = bootstrapMedian(Array.from({ length: 15 }, () => rng.uniform()), 1000, t);
      if (m.low <= 0.5 && 0.5 <= m.high) covered++;
    }
    assert.ok(covered >= 0.88 * trials && covered <= trials, `covered ${covered} of ${trials}`);
  });

  it('a paired comparison takes differences seed by seed and counts wins in the better direction', () => {
    const pairs = [
      { a: 0.1, b: 0.6 },
      { a: 0.2, b: 0.5 },
      { a: 0.7, b: 0.4 },
      { a: 0.3, b: 0.3 },
      { a: NaN, b: 0.2 },
    ];
    const lower = pairedComparison(pairs, 'lower');
    assert.deepEqual([lower.winsA, lower.winsB, lower.ties], [2, 1, 1]);
    assert.equal(lower.difference.n, 4);
    assert.ok(Math.abs(lower.difference.median - (-0.3 + 0) / 2) < 1e-12);
    const higher = pairedComparison(pairs, 'higher');
    assert.deepEqual([higher.winsA, higher.winsB, higher.ties], [1, 2, 1]);
  });

  it('Wilson intervals stay inside [0, 1] and are not degenerate at the ends', () => {
    const none = wilson(0, 20);
    assert.equal(none.low, 0);
    assert.ok(none.high > 0.1 && none.high < 0.2);
    const all = wilson(20, 20);
    assert.ok(all.low < 0.9 && all.high === 1);
  });
});
