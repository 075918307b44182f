/**
 * The dialogue stepper's logic without the DOM: which exchanges pass the outcome filter and the
 * search, and where the cursor goes. Tested in Node.
 */
import { OUTCOMES, OUTCOME_WORDS, outcomeOf, type Annotation, type Exchange } from '../protocol';

/** The outcome filters are the outcomes themselves (one word per outcome everywhere), plus all and annotated. */
export const FILTERS = ['all', ...OUTCOMES, 'annotated'] as const;
export type OutcomeFilter = (typeof FILTERS)[number];

export const FILTER_LABELS: Record<OutcomeFilter, string> = {
  all: 'All exchanges',
  ...(Object.fromEntries(OUTCOMES.map((o) => [o, OUTCOME_WORDS[o].plural])) as Record<(typeof OUTCOMES)[number], string>),
  annotated: 'Annotated',
};

export function passesFilter(x: Exchange, filter: OutcomeFilter, annotated: ReadonlySet<string>): boolean {
  if (filter === 'all') return true;
  if (filter === 'annotated') return annotated.has(x.id);
  return outcomeOf(x) === filter;
}

/** Every text of an exchange a user may search for: seed, thoughts, attack, answers, id, intent. */
export function searchableText(x: Exchange): string {
  const parts = [x.id, x.seed.prompt, x.seed.intent ?? '', x.seed.source ?? ''];
  for (const t of x.turns) {
    if (t.attacker) parts.push(t.attacker.thought ?? '', t.attacker.text);
    parts.push(t.defender.thought ?? '', t.defender.text);
  }
  return parts.join('\n').toLowerCase();
}

/** Case-insensitive; every whitespace-separated word of the query must occur. */
export function matchesSearch(x: Exchange, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const text = searchableText(x);
  return words.every((w) => text.includes(w));
}

export function visibleExchanges(all: readonly Exchange[], filter: OutcomeFilter, query: string, annotations: readonly Annotation[]): Exchange[] {
  const annotated = new Set(annotations.map((a) => a.exchange));
  return all.filter((x) => passesFilter(x, filter, annotated) && matchesSearch(x, query));
}

/** How many exchanges each filter would show, with the search applied: the counts match what a click shows. */
export function countByFilter(all: readonly Exchange[], annotations: readonly Annotation[], query = ''): Record<OutcomeFilter, number> {
  const annotated = new Set(annotations.map((a) => a.exchange));
  const counts = Object.fromEntries(FILTERS.map((f) => [f, 0])) as Record<OutcomeFilter, number>;
  for (const x of all) {
    if (!matchesSearch(x, query)) continue;
    for (const f of FILTERS) if (passesFilter(x, f, annotated)) counts[f]++;
  }
  return counts;
}

/**
 * The exchanges played from one seed instance in one step: GRPO's group, whose rewards are compared
 * with each other. Runs that record `group` are grouped by it; older ones by consecutive exchanges of
 * the same step with the same seed and the same attacked flag (the trainer writes a group's samples
 * one after another).
 */
export function groupKey(x: Exchange): string {
  return x.group !== undefined ? `${x.attempt}:${x.step}:g${x.group}` : `${x.attempt}:${x.step}:${x.attacked}:${x.seed.prompt}`;
}

export function groupOf(x: Exchange, all: readonly Exchange[]): Exchange[] {
  const at = all.indexOf(x);
  if (at < 0) return [x];
  const key = groupKey(x);
  let lo = at;
  let hi = at;
  while (lo > 0 && groupKey(all[lo - 1]) === key) lo--;
  while (hi < all.length - 1 && groupKey(all[hi + 1]) === key) hi++;
  return all.slice(lo, hi + 1);
}

/**
 * Where the cursor lands after the list changed: on the same exchange if it is still visible, else
 * on the nearest one that came after it in the full order, else the last.
 */
export function keepPosition(visible: readonly Exchange[], currentId: string | null, fullOrder: readonly Exchange[]): number {
  if (visible.length === 0) return -1;
  if (currentId === null) return 0;
  const same = visible.findIndex((x) => x.id === currentId);
  if (same >= 0) return same;
  const rank = new Map(fullOrder.map((x, i) => [x.id, i]));
  const at = rank.get(currentId);
  if (at === undefined) return 0;
  const next = visible.findIndex((x) => (rank.get(x.id) ?? -1) > at);
  return next >= 0 ? next : visible.length - 1;
}

/** Splits text around the search words, so matches can be marked without ever using innerHTML. */
export function highlightRanges(text: string, query: string): { text: string; match: boolean }[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0 || text.length === 0) return [{ text, match: false }];
  const lower = text.toLowerCase();
  const marks = new Array<boolean>(text.length).fill(false);
  for (const w of words) {
    for (let i = lower.indexOf(w); i >= 0; i = lower.indexOf(w, i + 1)) marks.fill(true, i, i + w.length);
  }
  const out: { text: string; match: boolean }[] = [];
  let start = 0;
  for (let i = 1; i <= text.length; i++) {
    if (i === text.length || marks[i] !== marks[start]) {
      out.push({ text: text.slice(start, i), match: marks[start] });
      start = i;
    }
  }
  return out;
}
