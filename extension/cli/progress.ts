/** A progress bar on a terminal (cli-progress), or a plain line every few percent when piped. */
import { SingleBar, Presets } from 'cli-progress';

export interface Progress {
  update(value: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export function progressBar(total: number, label: string, format = '{bar} {value}/{total} {detail}'): Progress {
  if (process.stderr.isTTY) {
    const bar = new SingleBar({ format: `${label} ${format}`, hideCursor: true, stream: process.stderr, etaBuffer: 20 }, Presets.shades_classic);
    bar.start(total, 0, { detail: '' });
    return { update: (v, fields) => bar.update(v, fields), stop: () => bar.stop() };
  }
  let lastReported = -1;
  return {
    update(value, fields) {
      const pct = Math.floor((100 * value) / Math.max(1, total));
      if (pct >= lastReported + 10 || value === total) {
        lastReported = pct;
        process.stderr.write(`${label} ${value}/${total} ${fields?.detail ?? ''}\n`);
      }
    },
    stop() {},
  };
}
