/**
 * The project's one home for intervals: 95% intervals of proportions and means (the evaluators), and
 * medians over seeds with bootstrap intervals and paired comparisons (sweeps).
 */
import { median, quantileSorted, sampleWithReplacement } from 'simple-statistics';
import { Rng } from './rng';

/** The two-sided 95% normal quantile. */
export const Z95 = 1.959963984540054;

export interface Interval {
  low: number;
  high: number;
}

/** Wilson score interval of a binomial proportion: never degenerate at 0 or 1. */
export function wilson(successes: number, n: number): Interval {
  if (n === 0) return { low: 0, high: 1 };
  const p = successes / n;
  const z2 = Z95 * Z95;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = wilsonHalfWidth(p, n);
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/** Half-width of the 95% Wilson interval for a proportion p of n (1 when nothing was seen). */
export function wilsonHalfWidth(p: number, n: number): number {
  if (n === 0) return 1;
  const z2 = Z95 * Z95;
  return (Z95 * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
}

/** Half-width of the normal 95% interval of a mean from its variance over n draws. */
export function normalHalfWidth(variance: number, n: number): number {
  return n ? Z95 * Math.sqrt(variance / n) : 1;
}

/** A median over independent replicates (seeds) with its 95% percentile-bootstrap interval. */
export interface MedianInterval extends Interval {
  median: number;
  /** Replicates behind it (NaN values are left out). */
  n: number;
}

export const BOOTSTRAP_RESAMPLES = 4000;

/**
 * The median of `values` and its 95% percentile-bootstrap interval: the 2.5% and 97.5% quantiles of
 * the medians of resamples drawn with replacement, from a fixed stream so the interval is
 * reproducible. With few replicates the interval is necessarily wide (with 8 it spans roughly the
 * 2nd to the 7th smallest value); that is the honest uncertainty of a median over seeds.
 */
export function bootstrapMedian(values: readonly number[], resamples = BOOTSTRAP_RESAMPLES, seed = 20261124): MedianInterval {
  // Sorted first, so the interval does not depend on the order the seeds were listed in.
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return { median: NaN, low: NaN, high: NaN, n: 0 };
  const rng = new Rng(seed, xs.length);
  const medians = new Array<number>(resamples);
  for (let r = 0; r < resamples; r++) medians[r] = median(sampleWithReplacement(xs, xs.length, () => rng.uniform()));
  medians.sort((a, b) => a - b);
  return { median: median(xs), low: quantileSorted(medians, 0.025), high: quantileSorted(medians, 0.975), n: xs.length };
}

/** A paired comparison of two methods over the same replicates (seeds). */
export interface PairedComparison {
  /** Median of the per-seed differences a − b, with its bootstrap interval. */
  difference: MedianInterval;
  /** Seeds where a is better, where b is better, and ties (|a − b| ≤ tolerance). */
  winsA: number;
  winsB: number;
  ties: number;
}

/**
 * Compares method a with method b seed by seed: `pairs` holds both values of each seed (a seed that
 * one method lacks is left out). `better` says which direction wins.
 */
export function pairedComparison(pairs: readonly { a: number; b: number }[], better: 'lower' | 'higher', tolerance = 1e-9): PairedComparison {
  const both = pairs.filter((p) => Number.isFinite(p.a) && Number.isFinite(p.b));
  const diffs = both.map((p) => p.a - p.b);
  const sign = better === 'lower' ? -1 : 1;
  return {
    difference: bootstrapMedian(diffs),
    winsA: diffs.filter((d) => sign * d > tolerance).length,
    winsB: diffs.filter((d) => -sign * d > tolerance).length,
    ties: diffs.filter((d) => Math.abs(d) <= tolerance).length,
  };
}
