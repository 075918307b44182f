/**
 * Colours from the VS Code theme: webviews receive the theme as CSS variables (--vscode-*) on <html>
 * and its kind as a class on <body>, and VS Code rewrites both when the user switches theme while a
 * panel is open. The panels read them here, make the series colours readable on the background
 * (palette.ts), and redraw when they change (onThemeChange).
 */
import chroma from 'chroma-js';
import { isLightKind, minimumContrast, over, readable, seriesPalette, type ThemeKind } from './palette';

export function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export interface ChartTheme {
  kind: ThemeKind;
  foreground: string;
  /** Secondary text (axis titles, hints). */
  muted: string;
  grid: string;
  background: string;
  fontFamily: string;
  fontSize: number;
  /** Series colours, one per run, each readable on the background. */
  palette: string[];
  /** Lines that must stand out in high-contrast themes (cell borders, round boundaries). */
  border: string;
}

/** The theme's kind: VS Code's body class, or, outside VS Code, the background's lightness. */
export function themeKind(background: string): ThemeKind {
  const body = document.body;
  const kind = body?.dataset.vscodeThemeKind ?? '';
  const has = (c: string) => body?.classList.contains(c) || kind === c;
  if (has('vscode-high-contrast-light')) return 'high-contrast-light';
  if (has('vscode-high-contrast')) return 'high-contrast';
  if (has('vscode-light')) return 'light';
  if (has('vscode-dark')) return 'dark';
  return safeLuminance(background) > 0.4 ? 'light' : 'dark';
}

function safeLuminance(colour: string): number {
  try {
    return chroma(colour).luminance();
  } catch {
    return 0;
  }
}

/** A CSS colour as hex (alpha kept) for chroma; the fallback for what chroma cannot read. */
function normalised(colour: string, fallback: string): string {
  return chroma.valid(colour) ? chroma(colour).hex() : fallback;
}

export function chartTheme(): ChartTheme {
  const background = normalised(cssVar('--vscode-editor-background', '#1e1e1e'), '#1e1e1e');
  return chartThemeFrom(cssVar, themeKind(background));
}

/** The chart theme from the theme's variables (`read(name, fallback)`) and its kind. Pure. */
export function chartThemeFrom(read: (name: string, fallback: string) => string, kind: ThemeKind): ChartTheme {
  const light = isLightKind(kind);
  const background = normalised(read('--vscode-editor-background', light ? '#ffffff' : '#1e1e1e'), light ? '#ffffff' : '#1e1e1e');
  const foreground = normalised(read('--vscode-charts-foreground', read('--vscode-foreground', light ? '#616161' : '#cccccc')), light ? '#616161' : '#cccccc');
  // The theme's chart colours, but its yellow (indistinguishable from orange once made readable on white)
  // and its orange (a translucent highlight in the Modern themes, rgba(234, 92, 0, 0.33), not a line colour).
  const base = [
    read('--vscode-charts-blue', light ? '#0063d3' : '#59a4f9'),
    '#d18616',
    read('--vscode-charts-green', light ? '#388a34' : '#89d185'),
    read('--vscode-charts-purple', light ? '#652d90' : '#b180d7'),
    read('--vscode-charts-red', light ? '#e51400' : '#f14c4c'),
  ].map((c) => normalised(c, '#808080'));
  const contrastBorder = read('--vscode-contrastBorder', '');
  return {
    kind,
    foreground: readable(foreground, background, 4.5),
    muted: readable(over(normalised(read('--vscode-descriptionForeground', foreground), foreground), background), background, 4.5),
    grid: normalised(read('--vscode-charts-lines', light ? 'rgba(0, 0, 0, 0.15)' : 'rgba(128, 128, 128, 0.35)'), '#80808059'),
    background,
    fontFamily: read('--vscode-font-family', 'sans-serif'),
    fontSize: Number.parseFloat(read('--vscode-font-size', '13px')) || 13,
    palette: seriesPalette(base, background, kind),
    border: contrastBorder ? normalised(contrastBorder, foreground) : readable(foreground, background, minimumContrast(kind)),
  };
}

/**
 * Calls `apply` whenever VS Code changes the theme under the panel (the variables on <html>, the kind
 * on <body>): once per change, after the new styles are in.
 */
export function onThemeChange(apply: () => void): void {
  let scheduled = false;
  let last = signature();
  const observer = new MutationObserver(() => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      const now = signature();
      if (now === last) return;
      last = now;
      apply();
    });
  });
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });
  if (document.body) observer.observe(document.body, { attributes: true, attributeFilter: ['class', 'data-vscode-theme-kind', 'data-vscode-theme-name'] });
}

/** What the charts' colours depend on, to skip redraws for unrelated style changes. */
function signature(): string {
  const names = ['--vscode-editor-background', '--vscode-foreground', '--vscode-charts-foreground', '--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-red', '--vscode-contrastBorder', '--vscode-font-size'];
  return `${document.body?.className ?? ''}|${names.map((n) => cssVar(n, '')).join('|')}`;
}

let probe: CanvasRenderingContext2D | null = null;

/** Any CSS colour as [r, g, b, a], normalised by the canvas itself (hex, rgb(), names all work). */
export function parseColor(color: string): [number, number, number, number] {
  probe ??= document.createElement('canvas').getContext('2d');
  if (!probe) return [128, 128, 128, 1];
  probe.fillStyle = '#808080';
  probe.fillStyle = color;
  const v = String(probe.fillStyle);
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(v);
  if (hex) return [parseInt(hex[1], 16), parseInt(hex[2], 16), parseInt(hex[3], 16), 1];
  const rgba = /^rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)$/.exec(v);
  if (rgba) return [Number(rgba[1]), Number(rgba[2]), Number(rgba[3]), rgba[4] === undefined ? 1 : Number(rgba[4])];
  return [128, 128, 128, 1];
}

/** The colour with its alpha multiplied by `alpha`, as rgba() (which Chart.js can parse). */
export function withAlpha(color: string, alpha: number): string {
  const [r, g, b, a] = parseColor(color);
  return `rgba(${r}, ${g}, ${b}, ${+(a * Math.max(0, Math.min(1, alpha))).toFixed(3)})`;
}
