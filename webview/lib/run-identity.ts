/**
 * How a run is coloured wherever it appears (its label, "name · start time", comes from the host:
 * extension/host/run-labels.ts). Colours are stable: a run takes the palette slot its id hashes to (or
 * the next free one) the first time a panel sees it, and keeps it — the assignment is saved with the
 * panel's state, so runs added later, hiding the panel or reloading the window never recolour a run.
 * Pure.
 */
export interface RunIdentity {
  /** The panel protocol's run key. */
  run: string;
  /** The run's id (its folder name), hashed for its preferred colour. */
  id: string;
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
export function assignColours(runs: readonly RunIdentity[], saved: Readonly<Record<string, number>>, slots: number): Record<string, number> {
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
