/**
 * The panels' colours, checked for contrast against the theme's background: series colours keep their
 * hue and move in lightness (OKLCH) until they reach minimumContrast() (a WCAG contrast ratio), text on
 * a coloured cell takes whichever of the theme's foreground or background reads better, and the
 * heatmaps' scales are perceptual ones with a low end that still shows on the background. Pure
 * (chroma-js, no DOM), so the checks run in Node.
 */
import chroma from 'chroma-js';

export type ThemeKind = 'light' | 'dark' | 'high-contrast' | 'high-contrast-light';

/**
 * Contrast every series colour must reach against the editor background: WCAG asks 3:1 of graphical
 * objects; chart lines are 2 px thin, so a margin above it, and text's 4.5:1 in high-contrast themes.
 */
export function minimumContrast(kind: ThemeKind): number {
  return kind === 'high-contrast' || kind === 'high-contrast-light' ? 4.5 : 3.5;
}

export function isLightKind(kind: ThemeKind): boolean {
  return kind === 'light' || kind === 'high-contrast-light';
}

/** WCAG contrast ratio of two CSS colours (1 to 21). */
export function contrast(a: string, b: string): number {
  return chroma.contrast(chroma(a), chroma(b));
}

/** Opaque hex of a colour drawn at `alpha` over `background`. */
export function over(colour: string, background: string, alpha = 1): string {
  const c = chroma(colour);
  const a = Math.max(0, Math.min(1, c.alpha() * alpha));
  return chroma.mix(chroma(background).alpha(1), c.alpha(1), a, 'rgb').hex('rgb');
}

/**
 * The colour with its hue and chroma kept and its OKLCH lightness moved (darker on a light background,
 * lighter on a dark one) just enough to reach `min` contrast against `background`.
 */
export function readable(colour: string, background: string, min: number): string {
  const bg = chroma(background).alpha(1);
  const c = chroma(colour).alpha(1);
  if (chroma.contrast(c.hex('rgb'), bg) >= min) return c.hex('rgb');
  const darken = bg.luminance() > 0.18;
  const [l0, ch, h] = c.oklch();
  for (let i = 1; i <= 100; i++) {
    const l = darken ? l0 * (1 - i / 100) : l0 + (1 - l0) * (i / 100);
    // Very light or dark colours cannot hold their chroma; clipping to sRGB keeps them valid.
    const hex = chroma.oklch(l, ch * (darken ? 1 : 1 - i / 200), Number.isNaN(h) ? 0 : h).hex('rgb');
    // Checked on the hex as drawn (rounding can take a hair off the ratio).
    if (chroma.contrast(hex, bg) >= min) return hex;
  }
  return darken ? '#000000' : '#ffffff';
}

/** The text colour (of the candidates) that reads best on `fill`. */
export function textOn(fill: string, candidates: readonly string[]): string {
  let best = candidates[0];
  let bestRatio = -1;
  for (const t of candidates) {
    const r = contrast(t, fill);
    if (r > bestRatio) {
      best = t;
      bestRatio = r;
    }
  }
  return best;
}

/**
 * Run colours: the theme's chart colours first (so the panels look like the editor), then more hues
 * (a run's colour comes from its id, and more colours mean fewer runs sharing one), each made readable.
 * Eight in all, pairwise distinct (ΔE ≥ 10) in the four default themes once made readable.
 */
export const EXTRA_HUES = ['#17becf', '#e377c2', '#8c564b'];

export function seriesPalette(base: readonly string[], background: string, kind: ThemeKind): string[] {
  const min = minimumContrast(kind);
  return [...base, ...EXTRA_HUES].map((c) => readable(c, background, min));
}

export interface ColourScale {
  /** The fill for a value of the domain (clamped to it). */
  colour(value: number): string;
  domain: [number, number];
}

/**
 * Sequential scale for rates in [0, 1] (attack success): light yellow to dark red on light themes,
 * dark purple to light yellow on dark ones, so that the low end stays close to the background and
 * high values stand out, and equal steps look equally far apart (lightness-corrected in Lab).
 */
export function rateScale(kind: ThemeKind): ColourScale {
  const stops = isLightKind(kind) ? chroma.brewer.YlOrRd.slice(0, 8) : ['#2e1f4d', '#5b2a78', '#93306f', '#c8485a', '#ec7446', '#f9ad4a', '#f7e38e'];
  const scale = chroma.scale(stops).mode('lab').correctLightness().domain([0, 1]);
  return { colour: (v) => scale(Math.max(0, Math.min(1, v))).hex('rgb'), domain: [0, 1] };
}

/** Diverging scale for a signed similarity in [−1, 1] (cosine): blue, a neutral middle, red. */
export function signedScale(kind: ThemeKind): ColourScale {
  const stops = isLightKind(kind) ? ['#2166ac', '#92c5de', '#f7f7f7', '#f4a582', '#b2182b'] : ['#4f9bd9', '#2d5170', '#3a3a3a', '#7a3b2e', '#f06a4b'];
  const scale = chroma.scale(stops).mode('lab').domain([-1, -0.5, 0, 0.5, 1]);
  return { colour: (v) => scale(Math.max(-1, Math.min(1, v))).hex('rgb'), domain: [-1, 1] };
}

/** Sequential scale for a non-negative size (norms): the rate scale over [0, max]. */
export function magnitudeScale(kind: ThemeKind, max: number): ColourScale {
  const rate = rateScale(kind);
  const top = max > 0 ? max : 1;
  return { colour: (v) => rate.colour(v / top), domain: [0, top] };
}

/** Distance between two colours as a person sees it (CIE ΔE 2000; about 2 is just noticeable). */
export function deltaE(a: string, b: string): number {
  return chroma.deltaE(a, b);
}
