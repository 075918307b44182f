/**
 * How a run is named and coloured wherever it appears. Labels are "name · start time", so two runs of
 * one config are told apart (seconds, then a number, are added only where that is still not enough).
 * Colours are stable: a run takes the palette slot its id hashes to (or the next free one) the first
 * time a panel sees it, and keeps it — the assignment is saved with the panel's state, so runs added
 * later, hiding the panel or reloading the window never recolour a run. Pure.
 */
export interface RunIdentity {
  /** The panel protocol's run key. */
  run: string;
  /** The run's id (its folder name), hashed for its preferred colour. */
  id: string;
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
export function runLabels(runs: readonly RunIdentity[]): Map<string, string> {
  const at = (r: RunIdentity, seconds: boolean) => {
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

/** FNV-1a: a small, stable hash of a run id. */
export function hashId(id: string): number {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Saved slots are kept for this many runs at most (the oldest assignments go first). */
const MAX_REMEMBERED = 64;

/**
 * Palette slots for the runs: saved ones are kept; a new run takes the slot its id hashes to, or the
 * next one no known run holds (all taken: its own slot, shared). Returns the new assignment to save.
 */
export function assignColours(runs: readonly Pick<RunIdentity, 'run' | 'id'>[], saved: Readonly<Record<string, number>>, slots: number): Record<string, number> {
  const out: Record<string, number> = {};
  const used = new Set<number>();
  for (const r of runs) {
    const s = saved[r.run];
    if (s !== undefined && Number.isInteger(s) && s >= 0 && s < slots) {
      out[r.run] = s;
      used.add(s);
    }
  }
  const fresh = runs.filter((r) => out[r.run] === undefined).sort((a, b) => a.id.localeCompare(b.id));
  for (const r of fresh) {
    const preferred = hashId(r.id) % slots;
    let slot = preferred;
    for (let k = 0; k < slots && used.has(slot); k++) slot = (preferred + k + 1) % slots;
    if (used.has(slot)) slot = preferred;
    out[r.run] = slot;
    used.add(slot);
  }
  // Runs not listed now keep their slot (they may come back), up to a bound.
  const others = Object.entries(saved).filter(([run]) => out[run] === undefined);
  for (const [run, slot] of others.slice(Math.max(0, others.length - (MAX_REMEMBERED - Object.keys(out).length)))) out[run] = slot;
  return out;
}
