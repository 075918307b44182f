/**
 * How a run is named wherever it appears — the Runs view, the panels, the questions the commands ask:
 * "name · start time", so that two runs of one config are told apart (seconds, then a number, are added
 * only where that is still not enough), instead of the long timestamped folder name. Pure.
 */
export interface NamedRun {
  /** The run's key (its folder). */
  run: string;
  name: string;
  /** ISO time the run was created, when known. */
  created: string | null;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => String(n).padStart(2, '0');

/** "23 Nov 22:50" in local time (with ":05" seconds when asked); "" for an unreadable time. */
export function formatStart(iso: string | null, seconds = false): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getDate()} ${MONTHS[d.getMonth()]} ${two(d.getHours())}:${two(d.getMinutes())}${seconds ? `:${two(d.getSeconds())}` : ''}`;
}

/** A distinct label per run: "name · 23 Nov 22:50", more precise only where two would read the same. */
export function runLabels(runs: readonly NamedRun[]): Map<string, string> {
  const at = (r: NamedRun, seconds: boolean) => {
    const time = formatStart(r.created, seconds);
    return time ? `${r.name} · ${time}` : r.name;
  };
  const first = runs.map((r) => at(r, false));
  const labels = runs.map((r, i) => (first.filter((l) => l === first[i]).length > 1 ? at(r, true) : first[i]));
  const out = new Map<string, string>();
  runs.forEach((r, i) => {
    const same = labels.filter((l) => l === labels[i]).length;
    const rank = labels.slice(0, i).filter((l) => l === labels[i]).length;
    out.set(r.run, same > 1 ? `${labels[i]} #${rank + 1}` : labels[i]);
  });
  return out;
}
