/**
 * Colours from the VS Code theme: webviews receive the theme as CSS variables (--vscode-*), so the
 * charts follow light, dark and high-contrast themes without knowing which one is active.
 */
export function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export interface ChartTheme {
  foreground: string;
  grid: string;
  background: string;
  fontFamily: string;
  fontSize: number;
  /** Series colours, one per run. */
  palette: string[];
  /** The heatmap's hot end (high attack success). */
  hot: string;
}

export function chartTheme(): ChartTheme {
  return {
    foreground: cssVar('--vscode-charts-foreground', cssVar('--vscode-foreground', '#cccccc')),
    grid: cssVar('--vscode-charts-lines', 'rgba(128, 128, 128, 0.35)'),
    background: cssVar('--vscode-editor-background', '#1e1e1e'),
    fontFamily: cssVar('--vscode-font-family', 'sans-serif'),
    fontSize: Number.parseFloat(cssVar('--vscode-font-size', '13px')) || 13,
    palette: [
      cssVar('--vscode-charts-blue', '#3794ff'),
      cssVar('--vscode-charts-orange', '#d18616'),
      cssVar('--vscode-charts-green', '#89d185'),
      cssVar('--vscode-charts-purple', '#b180d7'),
      cssVar('--vscode-charts-yellow', '#cca700'),
      cssVar('--vscode-charts-red', '#f14c4c'),
    ],
    hot: cssVar('--vscode-charts-red', '#f14c4c'),
  };
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
