/**
 * Chart.js, themed like VS Code, wrapped in small views that own a <figure>. Each view also writes
 * what it plots into the figure (data-series, and an aria-label on the canvas) — a canvas is opaque
 * to screen readers and to tests, the figure's attributes are not.
 *
 * Views keep what they were last given, so that a theme change (watchTheme) redraws every chart with
 * the new theme's colours: Chart.js copies colours into a chart when it is built, so a chart built
 * under one theme keeps that theme's text colours until it is built again.
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
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
import { over, textOn, type ColourScale } from './palette';
import { smooth, type Point, type RoundStart, type Series } from './series';
import { chartTheme, onThemeChange, withAlpha, type ChartTheme } from './theme';

Chart.register(LineController, LineElement, PointElement, BarController, BarElement, LinearScale, LogarithmicScale, CategoryScale, Legend, Tooltip, Filler, MatrixController, MatrixElement);

let theme: ChartTheme | null = null;
const views = new Set<FigureView>();

/** Reads the theme (once the page's styles are in) into Chart.js's defaults. */
export function applyTheme(): ChartTheme {
  theme = chartTheme();
  Chart.defaults.color = theme.foreground;
  Chart.defaults.borderColor = theme.grid;
  Chart.defaults.font.family = theme.fontFamily;
  Chart.defaults.font.size = Math.max(11, theme.fontSize - 1);
  // Live data arrives a few points at a time; animating each update only makes the charts jitter.
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  document.body.dataset.themeKind = theme.kind;
  return theme;
}

export function currentTheme(): ChartTheme {
  return theme ?? applyTheme();
}

/**
 * Follows theme changes: re-reads the colours, redraws every chart, then lets the panel redraw what
 * else it colours (swatches, legends).
 */
export function watchTheme(afterRestyle: (theme: ChartTheme) => void): void {
  onThemeChange(() => {
    const t = applyTheme();
    for (const v of views) v.restyle();
    afterRestyle(t);
  });
}

export interface FigureSpec {
  id: string;
  title: string;
  hint?: string;
}

function axisOptions(t: ChartTheme, title: string) {
  return { title: { display: true, text: title, color: t.muted }, ticks: { color: t.foreground }, grid: { color: t.grid }, border: { color: t.grid } };
}

/** The common frame of a chart: caption, canvas, and a note shown while there is nothing to plot. */
abstract class FigureView {
  readonly element: HTMLElement;
  protected readonly canvas: HTMLCanvasElement;
  protected readonly box: HTMLElement;
  private readonly emptyNote: HTMLElement;
  protected chart: Chart | null = null;

  constructor(spec: FigureSpec, className: string) {
    this.canvas = h('canvas', { attrs: { role: 'img', 'aria-label': spec.title } });
    this.emptyNote = h('p', { class: 'chart-empty', text: 'No data yet.' });
    this.box = h('div', { class: 'chart-box' }, this.canvas);
    this.element = h(
      'figure',
      { class: `chart-card ${className}`, dataset: { chart: spec.id } },
      h('figcaption', null, h('h3', { text: spec.title }), spec.hint ? h('p', { class: 'hint', text: spec.hint }) : null),
      this.box,
      this.emptyNote,
    );
    views.add(this);
  }

  /** Builds the chart again from the last data, in the current theme. */
  abstract restyle(): void;

  protected describe(summary: { label: string; points: number }[], ariaLabel: string): void {
    this.element.dataset.series = JSON.stringify(summary);
    // The theme the chart was drawn in, and its text colour: what a theme switch must change.
    this.element.dataset.theme = currentTheme().kind;
    this.element.dataset.foreground = currentTheme().foreground;
    this.canvas.setAttribute('aria-label', ariaLabel);
    const empty = summary.every((s) => s.points === 0);
    this.element.classList.toggle('is-empty', empty);
  }

  protected rebuild(): void {
    this.chart?.destroy();
    this.chart = null;
  }

  destroy(): void {
    this.chart?.destroy();
    this.chart = null;
    views.delete(this);
  }
}

// ---------------------------------------------------------------------------------------------------
// Lines

export interface LineChartSpec extends FigureSpec {
  xLabel: string;
  yLabel: string;
  yMin?: number;
  yMax?: number;
  /** Integer ticks on x (rounds). */
  integerX?: boolean;
  /** x is the training step: tooltips name the step's round, and rounds are marked. */
  perStep?: boolean;
}

export interface LineOptions {
  /** Where each run's rounds start (per-step charts): vertical lines, and the round in tooltips. */
  roundStarts?: ReadonlyMap<string, readonly RoundStart[]>;
  /** Exponential smoothing weight in [0, 1); 0 draws the raw values only. */
  smoothing?: number;
}

type LineDataset = ChartDataset<'line', Point[]> & { role?: 'raw' | 'band' | 'main'; run?: string; band?: Series['band'] };

/** The round a step belongs to: the last round that started at or before it. */
export function roundOfStep(starts: readonly RoundStart[] | undefined, step: number): number | null {
  if (!starts?.length) return null;
  let found: number | null = null;
  for (const s of starts) if (s.step <= step) found = s.round;
  return found;
}

/** Dashed vertical lines where rounds begin (after the first), labelled with the round. */
const roundBoundaries: Plugin<'line'> = {
  id: 'abspRoundBoundaries',
  beforeDatasetsDraw(chart) {
    const marks = (chart.options.plugins as { abspRoundBoundaries?: { marks: { x: number; label: string }[] } }).abspRoundBoundaries?.marks ?? [];
    if (!marks.length) return;
    const { ctx, chartArea, scales } = chart;
    const t = currentTheme();
    ctx.save();
    ctx.strokeStyle = withAlpha(t.border, 0.55);
    ctx.fillStyle = t.muted;
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 3]);
    ctx.font = `${Math.max(10, t.fontSize - 3)}px ${t.fontFamily}`;
    ctx.textBaseline = 'top';
    // Labels that would overlap (runs whose rounds start a step apart) go one line lower.
    const lineHeight = Math.max(10, t.fontSize - 3) + 2;
    const lastEndOnLine: number[] = [];
    for (const m of marks) {
      // The boundary sits half a step before the round's first step, between the two rounds' points.
      const px = scales.x.getPixelForValue(m.x - 0.5);
      if (px < chartArea.left || px > chartArea.right) continue;
      ctx.beginPath();
      ctx.moveTo(px, chartArea.top);
      ctx.lineTo(px, chartArea.bottom);
      ctx.stroke();
      const width = ctx.measureText(m.label).width;
      let line = 0;
      while ((lastEndOnLine[line] ?? -Infinity) > px) line++;
      lastEndOnLine[line] = px + 3 + width + 4;
      ctx.fillText(m.label, px + 3, chartArea.top + 2 + line * lineHeight);
    }
    ctx.restore();
  },
};

export class LineChartView extends FigureView {
  private last: { series: readonly Series[]; colourOf: (run: string) => string; options: LineOptions } | null = null;

  constructor(private readonly spec: LineChartSpec) {
    super(spec, 'line-chart');
  }

  /** Replaces the plotted series; colours come from colourOf(run) so a run looks the same everywhere. */
  update(series: readonly Series[], colourOf: (run: string) => string, options: LineOptions = {}): void {
    this.last = { series, colourOf, options };
    const datasets = this.datasets(series, colourOf, options);
    const marks = this.boundaryMarks(series, options);
    if (!this.chart) this.create(datasets, marks);
    else {
      this.chart.data.datasets = datasets;
      (this.chart.options.plugins as Record<string, unknown>).abspRoundBoundaries = { marks };
      this.chart.update('none');
    }
    // A band's edges travel with its line: [round, low, high] per point.
    const summary = series.map((s) => ({ label: s.label, points: s.points.length, ...(s.band ? { band: s.band.low.map((p, i) => [p.x, p.y, s.band!.high[i]?.y ?? null]) } : {}) }));
    this.describe(summary, `${this.spec.title}: ${summary.map((s) => `${s.label}, ${s.points} points`).join('; ') || 'no data'}`);
    this.element.dataset.boundaries = marks.map((m) => m.x).join(',');
    this.element.dataset.smoothing = String(this.smoothingOf(options));
  }

  restyle(): void {
    if (!this.last) return;
    this.rebuild();
    this.update(this.last.series, this.last.colourOf, this.last.options);
  }

  private smoothingOf(options: LineOptions): number {
    return this.spec.perStep ? Math.max(0, Math.min(0.99, options.smoothing ?? 0)) : 0;
  }

  private datasets(series: readonly Series[], colourOf: (run: string) => string, options: LineOptions): LineDataset[] {
    const w = this.smoothingOf(options);
    const out: LineDataset[] = [];
    for (const s of series) {
      const colour = colourOf(s.run);
      const dense = s.points.length > 40;
      if (s.band) {
        // A band (a sweep's interval): its lower edge, then its upper edge filled down to it.
        out.push({ role: 'band', run: s.run, label: `${s.label} (low)`, data: s.band.low, borderWidth: 0, pointRadius: 0, pointHitRadius: 0, fill: false, spanGaps: true });
        out.push({ role: 'band', run: s.run, label: `${s.label} (interval)`, data: s.band.high, borderWidth: 0, pointRadius: 0, pointHitRadius: 0, fill: '-1', backgroundColor: withAlpha(colour, 0.18), spanGaps: true });
      }
      if (w > 0) {
        out.push({ role: 'raw', run: s.run, label: `${s.label} (raw)`, data: s.points, borderColor: withAlpha(colour, 0.3), backgroundColor: withAlpha(colour, 0.3), borderDash: s.dash ?? [], borderWidth: 1, pointRadius: 0, pointHitRadius: 0, tension: 0, spanGaps: true });
      }
      out.push({
        role: 'main',
        run: s.run,
        label: s.label,
        band: s.band,
        data: w > 0 ? smooth(s.points, w) : s.points,
        borderColor: colour,
        backgroundColor: colour,
        borderDash: s.dash ?? [],
        borderWidth: 2,
        pointRadius: dense || w > 0 ? 0 : 2.5,
        pointHoverRadius: 4,
        tension: 0,
        spanGaps: true,
      });
    }
    return out;
  }

  /** One mark per distinct round start (after each run's first round) of the runs shown. */
  private boundaryMarks(series: readonly Series[], options: LineOptions): { x: number; label: string }[] {
    if (!this.spec.perStep || !options.roundStarts) return [];
    const marks = new Map<number, string>();
    for (const run of new Set(series.map((s) => s.run))) {
      const starts = options.roundStarts.get(run) ?? [];
      starts.slice(1).forEach((s) => {
        if (!marks.has(s.step)) marks.set(s.step, `round ${s.round}`);
      });
    }
    return [...marks].sort((a, b) => a[0] - b[0]).map(([x, label]) => ({ x, label }));
  }

  private create(datasets: LineDataset[], marks: { x: number; label: string }[]): void {
    const t = currentTheme();
    const spec = this.spec;
    this.chart = new Chart(this.canvas, {
      type: 'line',
      data: { datasets },
      options: {
        parsing: false,
        normalized: true,
        interaction: { mode: 'nearest', intersect: false },
        scales: {
          x: { type: 'linear', ...axisOptions(t, spec.xLabel), ticks: { color: t.foreground, ...(spec.integerX ? { stepSize: 1, precision: 0 } : { precision: 0 }) } },
          y: { type: 'linear', ...axisOptions(t, spec.yLabel), suggestedMin: spec.yMin, suggestedMax: spec.yMax },
        },
        plugins: {
          legend: {
            position: 'bottom',
            labels: { color: t.foreground, boxWidth: 18, boxHeight: 2, filter: (item, data) => (data.datasets[item.datasetIndex ?? 0] as LineDataset).role === 'main' },
          },
          tooltip: {
            filter: (item) => (item.dataset as LineDataset).role === 'main',
            callbacks: {
              title: (items) => {
                const item = items[0];
                if (!item) return '';
                const x = item.parsed.x ?? 0;
                const round = spec.perStep ? roundOfStep(this.last?.options.roundStarts?.get((item.dataset as LineDataset).run ?? ''), x) : null;
                const title = !spec.perStep ? `round ${x}` : round === null ? `step ${x}` : `step ${x} · round ${round}`;
                // A canvas tooltip is invisible to screen readers and tests; the figure says what it shows.
                this.element.dataset.tooltip = title;
                return title;
              },
              label: (ctx) => {
                // A sweep's median line: its interval too.
                const band = (ctx.dataset as LineDataset).band;
                const low = band?.low[ctx.dataIndex]?.y;
                const high = band?.high[ctx.dataIndex]?.y;
                const interval = low !== undefined && high !== undefined && Number.isFinite(low) && Number.isFinite(high) ? ` [${num(low)}, ${num(high)}]` : '';
                return `${ctx.dataset.label}: ${num(ctx.parsed.y)}${interval}`;
              },
            },
          },
          ...({ abspRoundBoundaries: { marks } } as Record<string, unknown>),
        },
      },
      plugins: [roundBoundaries as Plugin],
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// Bars

export interface BarSeries {
  label: string;
  values: (number | null)[];
  /** An index into the theme's palette, so the colour follows theme changes. */
  colour: number;
}

export class BarChartView extends FigureView {
  private last: { categories: readonly string[]; series: readonly BarSeries[] } | null = null;

  constructor(private readonly spec: LineChartSpec & { logY?: boolean }) {
    super(spec, 'bar-chart');
  }

  update(categories: readonly string[], series: readonly BarSeries[]): void {
    this.last = { categories, series };
    const t = currentTheme();
    // Solid fills: a bar's colour is readable on the background only at full strength.
    const datasets: ChartDataset<'bar', (number | null)[]>[] = series.map((s) => ({
      label: s.label,
      data: s.values,
      backgroundColor: t.palette[s.colour % t.palette.length],
      borderColor: t.palette[s.colour % t.palette.length],
      borderWidth: 1,
    }));
    if (!this.chart) {
      this.chart = new Chart(this.canvas, {
        type: 'bar',
        data: { labels: [...categories], datasets },
        options: {
          scales: {
            x: { type: 'category', ...axisOptions(t, this.spec.xLabel), ticks: { color: t.foreground, autoSkip: true, maxRotation: 60 } },
            y: { type: this.spec.logY ? 'logarithmic' : 'linear', ...axisOptions(t, this.spec.yLabel), suggestedMin: this.spec.yMin, suggestedMax: this.spec.yMax },
          },
          plugins: {
            legend: { position: 'bottom', labels: { color: t.foreground, boxWidth: 12 } },
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
    this.element.dataset.colours = JSON.stringify(datasets.map((d) => d.backgroundColor));
  }

  restyle(): void {
    if (!this.last) return;
    this.rebuild();
    this.update(this.last.categories, this.last.series);
  }
}

// ---------------------------------------------------------------------------------------------------
// Heatmaps

export interface HeatmapData {
  rows: string[];
  columns: string[];
  /** values[row][column]; null where not measured. */
  values: (number | null)[][];
  rowTitle: string;
  columnTitle: string;
  /** What a value is (tooltips and the colour bar), e.g. "attack success". */
  valueName: string;
  format: (v: number | null) => string;
  /** The cell's tooltip. */
  describe: (row: string, column: string, value: number | null) => string;
  /** A click on a cell. */
  onCell?: (row: string, column: string) => void;
}

interface Cell {
  x: string;
  y: string;
  v: number | null;
  fill: string;
  text: string;
}

/**
 * Writes each cell's value into it, in the colour that reads best on that cell's fill. (A closure, not
 * a plugin option: Chart.js would call a function given as an option as a scriptable option.)
 */
function cellLabels(format: () => (v: number | null) => string): Plugin<'matrix'> {
  return {
    id: 'abspCellLabels',
    afterDatasetsDraw(chart) {
      const ctx = chart.ctx;
      const meta = chart.getDatasetMeta(0);
      const data = chart.data.datasets[0]?.data as unknown as Cell[] | undefined;
      if (!data) return;
      const t = currentTheme();
      const f = format();
      ctx.save();
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.font = `${Math.max(10, t.fontSize - 2)}px ${t.fontFamily}`;
      meta.data.forEach((el, i) => {
        const p = el.getProps(['x', 'y', 'width', 'height'], true) as { x: number; y: number; width: number; height: number };
        if (p.width < 24 || p.height < 14 || !data[i]) return;
        ctx.fillStyle = data[i].text;
        ctx.fillText(f(data[i].v), p.x + p.width / 2, p.y + p.height / 2);
      });
      ctx.restore();
    },
  };
}

export class HeatmapView extends FigureView {
  private readonly bar: HTMLElement;
  /** Where the cells lie in the canvas (after each layout), for clicks in tests and tools. */
  private readonly areaPlugin: Plugin = {
    id: 'abspArea',
    afterLayout: (chart) => {
      const a = chart.chartArea;
      if (a) this.element.dataset.area = JSON.stringify({ left: a.left, top: a.top, right: a.right, bottom: a.bottom });
    },
  };
  private last: { data: HeatmapData | null; scale: (t: ChartTheme) => ColourScale } | null = null;

  constructor(spec: FigureSpec) {
    super(spec, 'heatmap');
    this.bar = h('div', { class: 'colour-bar', attrs: { 'aria-hidden': 'true' } });
    this.element.insertBefore(this.bar, this.box.nextSibling);
  }

  /** `scale` maps a value to its fill in a theme; called again when the theme changes. */
  update(data: HeatmapData | null, scale: (t: ChartTheme) => ColourScale): void {
    this.last = { data, scale };
    const t = currentTheme();
    const s = scale(t);
    const missing = over(t.grid, t.background, 0.35);
    const cells: Cell[] = [];
    if (data) {
      data.rows.forEach((row, i) =>
        data.columns.forEach((col, j) => {
          const v = data.values[i]?.[j] ?? null;
          const fill = v === null ? missing : s.colour(v);
          cells.push({ x: col, y: row, v, fill, text: textOn(fill, [t.foreground, t.background, '#000000', '#ffffff']) });
        }),
      );
    }
    const columns = data?.columns ?? [];
    const rows = data?.rows ?? [];
    const dataset = {
      label: data?.valueName ?? '',
      data: cells,
      backgroundColor: (ctx: { raw?: unknown }) => (ctx.raw as Cell | undefined)?.fill ?? missing,
      borderColor: t.kind.startsWith('high-contrast') ? t.border : t.background,
      borderWidth: 1,
      width: ({ chart }: { chart: Chart }) => Math.max(1, (chart.chartArea?.width ?? 0) / Math.max(1, columns.length) - 2),
      height: ({ chart }: { chart: Chart }) => Math.max(1, (chart.chartArea?.height ?? 0) / Math.max(1, rows.length) - 2),
    };
    this.chart?.destroy();
    this.chart = new Chart(this.canvas, {
      type: 'matrix',
      data: { datasets: [dataset as never] },
      options: {
        onClick: (_event, elements) => {
          const cell = elements[0] ? cells[elements[0].index] : undefined;
          if (cell && data?.onCell) data.onCell(cell.y, cell.x);
        },
        scales: {
          x: { type: 'category', labels: columns, offset: true, grid: { display: false }, ticks: { color: t.foreground }, border: { color: t.grid }, title: { display: true, text: data?.columnTitle ?? '', color: t.muted } },
          // First row on top, as in a table (the matrix controller's default reverses the axis).
          y: { type: 'category', labels: rows, offset: true, reverse: false, grid: { display: false }, ticks: { color: t.foreground }, border: { color: t.grid }, title: { display: true, text: data?.rowTitle ?? '', color: t.muted } },
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: () => '',
              label: (ctx) => {
                const c = ctx.raw as Cell;
                return data ? data.describe(c.y, c.x, c.v) : '';
              },
            },
          },
        },
      },
      plugins: [cellLabels(() => this.last?.data?.format ?? ((v: number | null) => pct(v))) as Plugin, this.areaPlugin],
    });
    // One row per attacker or layer: the box grows with the rows (a 28-layer model needs room).
    this.box.style.height = `${Math.max(220, Math.min(900, rows.length * 26 + 90))}px`;
    this.renderColourBar(s, data);
    this.describe(
      [{ label: data?.valueName ?? '', points: cells.length }],
      data ? `${data.valueName}: ${rows.length} ${data.rowTitle} rows by ${columns.length} ${data.columnTitle} columns` : 'No data',
    );
    this.element.dataset.rows = String(rows.length);
    this.element.dataset.columns = String(columns.length);
    this.element.dataset.cells = JSON.stringify(cells.map((c) => ({ x: c.x, y: c.y, v: c.v, fill: c.fill, text: c.text })));

  }

  restyle(): void {
    if (this.last) this.update(this.last.data, this.last.scale);
  }

  /** The scale beside the cells: its gradient and five labelled ticks. */
  private renderColourBar(s: ColourScale, data: HeatmapData | null): void {
    const [lo, hi] = s.domain;
    const stops = Array.from({ length: 11 }, (_, i) => `${s.colour(lo + ((hi - lo) * i) / 10)} ${i * 10}%`);
    const ramp = h('div', { class: 'colour-ramp' });
    ramp.style.background = `linear-gradient(to right, ${stops.join(', ')})`;
    const format = data?.format ?? ((v: number | null) => num(v));
    const ticks = h('div', { class: 'colour-ticks' }, ...[0, 0.25, 0.5, 0.75, 1].map((f) => h('span', { text: format(lo + (hi - lo) * f) })));
    this.bar.replaceChildren(h('span', { class: 'colour-name', text: data?.valueName ?? '' }), h('div', { class: 'colour-scale' }, ramp, ticks));
    this.bar.dataset.domain = `${lo},${hi}`;
    this.bar.hidden = !data;
  }
}
