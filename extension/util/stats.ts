/** Small statistics shared by the evaluators: 95% intervals of proportions and means. */

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
