/**
 * Chart.js, themed like VS Code, wrapped in small views that own a <figure>. Each view also writes
 * what it plots into the figure (data-series, and an aria-label on the canvas) — a canvas is opaque
 * to screen readers and to tests, the figure's attributes are not.
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LineController,
  LineElement,
  LinearScale,
  LogarithmicScale,
  PointElement,
  Tooltip,
  type ChartDataset,
  type Plugin,
} from 'chart.js';
import { MatrixController, MatrixElement } from 'chartjs-chart-matrix';
import { h } from './dom';
import { num, pct } from './format';
import type { Point, Series } from './series';
import { chartTheme, withAlpha, type ChartTheme } from './theme';

Chart.register(LineController, LineElement, PointElement, BarController, BarElement, LinearScale, LogarithmicScale, CategoryScale, Legend, Tooltip, MatrixController, MatrixElement);

let theme: ChartTheme | null = null;

/** Reads the theme once the page's styles are in; live updates must not restyle on every point. */
export function applyTheme(): ChartTheme {
  theme = chartTheme();
  Chart.defaults.color = theme.foreground;
  Chart.defaults.borderColor = theme.grid;
  Chart.defaults.font.family = theme.fontFamily;
  Chart.defaults.font.size = Math.max(11, theme.fontSize - 1);
  // Live data arrives a few points at a time; animating each update only makes the charts jitter.
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  return theme;
}

function currentTheme(): ChartTheme {
  return theme ?? applyTheme();
}

export interface FigureSpec {
  id: string;
  title: string;
  hint?: string;
}

/** The common frame of a chart: caption, canvas, and a note shown while there is nothing to plot. */
abstract class FigureView {
  readonly element: HTMLElement;
  protected readonly canvas: HTMLCanvasElement;
  private readonly emptyNote: HTMLElement;
  protected chart: Chart | null = null;

  constructor(spec: FigureSpec, className: string) {
    this.canvas = h('canvas', { attrs: { role: 'img', 'aria-label': spec.title } });
    this.emptyNote = h('p', { class: 'chart-empty', text: 'No data yet.' });
    this.element = h(
      'figure',
      { class: `chart-card ${className}`, dataset: { chart: spec.id } },
      h('figcaption', null, h('h3', { text: spec.title }), spec.hint ? h('p', { class: 'hint', text: spec.hint }) : null),
      h('div', { class: 'chart-box' }, this.canvas),
      this.emptyNote,
    );
  }

  protected describe(summary: { label: string; points: number }[], ariaLabel: string): void {
    this.element.dataset.series = JSON.stringify(summary);
    this.canvas.setAttribute('aria-label', ariaLabel);
    const empty = summary.every((s) => s.points === 0);
    this.element.classList.toggle('is-empty', empty);
  }

  destroy(): void {
    this.chart?.destroy();
    this.chart = null;
  }
}

export interface LineChartSpec extends FigureSpec {
  xLabel: string;
  yLabel: string;
  yMin?: number;
  yMax?: number;
  /** Integer ticks on x (rounds). */
  integerX?: boolean;
}

export class LineChartView extends FigureView {
  constructor(private readonly spec: LineChartSpec) {
    super(spec, 'line-chart');
  }

  /** Replaces the plotted series; colours come from colourOf(run) so a run looks the same everywhere. */
  update(series: readonly Series[], colourOf: (run: string) => string): void {
    const datasets: ChartDataset<'line', Point[]>[] = series.map((s) => ({
      label: s.label,
      data: s.points,
      borderColor: colourOf(s.run),
      backgroundColor: colourOf(s.run),
      borderDash: s.dash ?? [],
      borderWidth: 2,
      pointRadius: s.points.length > 40 ? 0 : 2.5,
      pointHoverRadius: 4,
      tension: 0,
      spanGaps: true,
    }));
    if (!this.chart) {
      this.chart = new Chart(this.canvas, {
        type: 'line',
        data: { datasets },
        options: {
          parsing: false,
          normalized: true,
          interaction: { mode: 'nearest', intersect: false },
          scales: {
            x: { type: 'linear', title: { display: true, text: this.spec.xLabel }, ticks: this.spec.integerX ? { stepSize: 1, precision: 0 } : { precision: 0 } },
            y: { type: 'linear', title: { display: true, text: this.spec.yLabel }, suggestedMin: this.spec.yMin, suggestedMax: this.spec.yMax },
          },
          plugins: {
            legend: { position: 'bottom', labels: { boxWidth: 18, boxHeight: 2 } },
            tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${num(ctx.parsed.y)}` } },
          },
        },
      });
    } else {
      this.chart.data.datasets = datasets;
      this.chart.update('none');
    }
    const summary = series.map((s) => ({ label: s.label, points: s.points.length }));
    this.describe(summary, `${this.spec.title}: ${summary.map((s) => `${s.label}, ${s.points} points`).join('; ') || 'no data'}`);
  }
}

export interface BarSeries {
  label: string;
  values: (number | null)[];
  colour: string;
}

export class BarChartView extends FigureView {
  constructor(private readonly spec: LineChartSpec & { logY?: boolean }) {
    super(spec, 'bar-chart');
  }

  update(categories: readonly string[], series: readonly BarSeries[]): void {
    const datasets: ChartDataset<'bar', (number | null)[]>[] = series.map((s) => ({
      label: s.label,
      data: s.values,
      backgroundColor: withAlpha(s.colour, 0.75),
      borderColor: s.colour,
      borderWidth: 1,
    }));
    if (!this.chart) {
      this.chart = new Chart(this.canvas, {
        type: 'bar',
        data: { labels: [...categories], datasets },
        options: {
          scales: {
            x: { type: 'category', title: { display: true, text: this.spec.xLabel }, ticks: { autoSkip: true, maxRotation: 60 } },
            y: {
              type: this.spec.logY ? 'logarithmic' : 'linear',
              title: { display: true, text: this.spec.yLabel },
              suggestedMin: this.spec.yMin,
              suggestedMax: this.spec.yMax,
            },
          },
          plugins: {
            legend: { position: 'bottom', labels: { boxWidth: 12 } },
            tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${num(ctx.parsed.y)}` } },
          },
        },
      });
    } else {
      this.chart.data.labels = [...categories];
      this.chart.data.datasets = datasets;
      this.chart.update('none');
    }
    const summary = series.map((s) => ({ label: s.label, points: s.values.filter((v) => v !== null).length }));
    this.describe(summary, `${this.spec.title}: ${categories.length} categories; ${summary.map((s) => s.label).join(', ')}`);
  }
}

export interface HeatmapData {
  rows: string[];
  columns: string[];
  /** values[row][column], in [0, 1]; null where not measured. */
  values: (number | null)[][];
  rowTitle: string;
  columnTitle: string;
}

interface Cell {
  x: string;
  y: string;
  v: number | null;
}

/** Writes each cell's value into it: a heatmap's colours alone are hard to read exactly. */
const cellLabels: Plugin<'matrix'> = {
  id: 'abspCellLabels',
  afterDatasetsDraw(chart) {
    const ctx = chart.ctx;
    const meta = chart.getDatasetMeta(0);
    const data = chart.data.datasets[0]?.data as unknown as Cell[] | undefined;
    if (!data) return;
    ctx.save();
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillStyle = currentTheme().foreground;
    ctx.font = `${Math.max(10, currentTheme().fontSize - 2)}px ${currentTheme().fontFamily}`;
    meta.data.forEach((el, i) => {
      const p = el.getProps(['x', 'y', 'width', 'height'], true) as { x: number; y: number; width: number; height: number };
      if (p.width < 24 || p.height < 14) return;
      ctx.fillText(pct(data[i]?.v ?? null), p.x + p.width / 2, p.y + p.height / 2);
    });
    ctx.restore();
  },
};

export class HeatmapView extends FigureView {
  constructor(spec: FigureSpec) {
    super(spec, 'heatmap');
  }

  update(data: HeatmapData | null): void {
    const t = currentTheme();
    const cells: Cell[] = [];
    if (data) {
      data.rows.forEach((row, i) => data.columns.forEach((col, j) => cells.push({ x: col, y: row, v: data.values[i]?.[j] ?? null })));
    }
    const columns = data?.columns ?? [];
    const rows = data?.rows ?? [];
    const dataset = {
      label: 'attack success',
      data: cells,
      backgroundColor: (ctx: { raw?: unknown }) => {
        const v = (ctx.raw as Cell | undefined)?.v;
        return v === null || v === undefined ? withAlpha(t.grid, 0.3) : withAlpha(t.hot, 0.12 + 0.88 * v);
      },
      borderColor: t.background,
      borderWidth: 1,
      width: ({ chart }: { chart: Chart }) => Math.max(1, (chart.chartArea?.width ?? 0) / Math.max(1, columns.length) - 2),
      height: ({ chart }: { chart: Chart }) => Math.max(1, (chart.chartArea?.height ?? 0) / Math.max(1, rows.length) - 2),
    };
    this.chart?.destroy();
    this.chart = new Chart(this.canvas, {
      type: 'matrix',
      data: { datasets: [dataset as never] },
      options: {
        scales: {
          x: { type: 'category', labels: columns, offset: true, grid: { display: false }, title: { display: true, text: data?.columnTitle ?? '' } },
          // First row on top, as in a table (the matrix controller's default reverses the axis).
          y: { type: 'category', labels: rows, offset: true, reverse: false, grid: { display: false }, title: { display: true, text: data?.rowTitle ?? '' } },
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: () => '',
              label: (ctx) => {
                const c = ctx.raw as Cell;
                return `attacker ${c.y} vs defender ${c.x}: ${pct(c.v, 1)}`;
              },
            },
          },
        },
      },
      plugins: [cellLabels as Plugin],
    });
    this.describe(
      [{ label: 'attack success', points: cells.length }],
      data ? `Cross-play attack success, ${rows.length} attackers by ${columns.length} defenders` : 'No cross-play results',
    );
    this.element.dataset.rows = String(rows.length);
    this.element.dataset.columns = String(columns.length);
  }
}
