/**
 * An exchange as a read-only text document, for reading it in the editor and annotating it with
 * comments: the seed, each turn's hidden thoughts, attack and answer, the judge's labels and the
 * rewards. Every annotatable text appears verbatim on lines of its own, and the document records where
 * each one starts, so a comment on a selection becomes a span over a field of the exchange
 * (`turns.0.defender.text`, characters 0–12) — the form annotations.jsonl keeps — and back. Pure.
 */
import { roundDirName } from '../rundir/layout';
import { OUTCOME_WORDS, outcomeOf } from '../rundir/outcome';
import type { AnnotationSpan, Exchange, Utterance } from '../rundir/schema';

export const EXCHANGE_SCHEME = 'absp-exchange';
/**
 * The file extension of an exchange's document, so that a document restored after a window reload
 * (before anything sets its language) opens in the ABSP Exchange language.
 */
export const EXCHANGE_EXTENSION = '.absp-exchange';

/** Where a field's text lies in the document (character offsets, end exclusive). */
export interface FieldRange {
  field: string;
  title: string;
  start: number;
  end: number;
}

export interface ExchangeDocument {
  text: string;
  fields: FieldRange[];
}


const yesNo = (v: boolean | null | undefined) => (v === null || v === undefined ? 'unparsable' : v ? 'yes' : 'no');
const signed = (v: number) => (v > 0 ? `+${v.toFixed(2)}` : v.toFixed(2));
/** Text inside a field never contains \r (the editor would count it differently from the file). */
const clean = (s: string) => s.replace(/\r\n?/g, '\n');

export function renderExchange(x: Exchange, runLabel: string): ExchangeDocument {
  let text = '';
  const fields: FieldRange[] = [];
  const line = (s = '') => (text += `${s}\n`);
  const field = (field: string, title: string, value: string) => {
    line(`── ${title} ──`);
    const start = text.length;
    text += clean(value);
    fields.push({ field, title, start, end: text.length });
    line();
    line();
  };

  line(`Exchange ${x.id} · round ${x.round} · step ${x.step} · attempt ${x.attempt}`);
  line(`Run: ${runLabel}`);
  const outcome = OUTCOME_WORDS[outcomeOf(x)];
  line(`Outcome: ${outcome.label} (${outcome.meaning})`);
  line('Read-only. Select text (or a line) and add a comment to annotate it; a comment on these first lines annotates the whole exchange.');
  line();
  const seedFacts = [x.seed.harmful ? 'harmful' : 'benign', x.seed.source, x.seed.intent ? `intent ${x.seed.intent}` : undefined].filter(Boolean).join(', ');
  field('seed.prompt', `Seed (${seedFacts})`, x.seed.prompt);
  x.turns.forEach((t, i) => {
    const turn = x.turns.length > 1 ? `Turn ${i + 1} · ` : '';
    const utterance = (role: 'attacker' | 'defender', u: Utterance, textTitle: string) => {
      if (u.thought !== null) field(`turns.${i}.${role}.thought`, `${turn}${role === 'attacker' ? 'Attacker' : 'Defender'}'s hidden thought`, u.thought);
      field(`turns.${i}.${role}.text`, `${turn}${textTitle}`, u.text);
    };
    if (t.attacker) utterance('attacker', t.attacker, 'Attack (what the defender saw)');
    else if (i === 0) {
      line(`── ${turn}Not attacked: the seed went to the defender unchanged ──`);
      line();
    }
    utterance('defender', t.defender, 'Answer');
  });
  const j = x.judge;
  line('── Judge ──');
  line(`prompt harmful: ${yesNo(j.prompt_harmful)} · refusal: ${yesNo(j.refusal)} · response harmful: ${yesNo(j.response_harmful)}`);
  const extra: string[] = [];
  if (j.faithful !== undefined) extra.push(`faithful: ${yesNo(j.faithful)}`);
  if (j.well_formed) extra.push(`well-formed: attacker ${yesNo(j.well_formed.attacker)}, defender ${yesNo(j.well_formed.defender)}`);
  if (j.unparsable) extra.push('unparsable: yes');
  if (extra.length) line(extra.join(' · '));
  line();
  line('── Rewards ──');
  const components = Object.entries(x.rewards.components ?? {});
  for (const role of ['attacker', 'defender'] as const) {
    const v = x.rewards[role];
    const parts = components.filter(([k]) => k.startsWith(`${role}/`)).map(([k, c]) => `${k.slice(role.length + 1)} ${signed(c)}`);
    line(`${role}: ${v === null ? '— (none)' : signed(v)}${parts.length ? ` (${parts.join(', ')})` : ''}`);
  }
  line();
  line('── Adapters that played ──');
  for (const [role, p] of Object.entries(x.adapters)) line(`${role}: ${p ?? '—'}`);
  return { text, fields };
}

/**
 * The span a comment on [start, end) annotates: the part of one field it covers, clamped to that
 * field; null (the whole exchange) when it covers no field's text or more than one.
 */
export function spanFromOffsets(doc: ExchangeDocument, start: number, end: number): AnnotationSpan | null {
  const lo = Math.min(start, end);
  const hi = Math.max(start, end);
  const touched = doc.fields.filter((f) => (hi > lo ? lo < f.end && hi > f.start : lo >= f.start && lo <= f.end));
  if (touched.length !== 1) return null;
  const f = touched[0];
  const s = Math.max(lo, f.start) - f.start;
  const e = Math.min(hi, f.end) - f.start;
  return { field: f.field, start: s, end: Math.max(s, e) };
}

/** Where a span lies in the document, or null when its field is not in this exchange (or it overruns it). */
export function offsetsFromSpan(doc: ExchangeDocument, span: AnnotationSpan): { start: number; end: number } | null {
  const f = doc.fields.find((x) => x.field === span.field);
  if (!f || span.end > f.end - f.start) return null;
  return { start: f.start + span.start, end: f.start + span.end };
}

/** How a span is named to a person: "Answer, characters 0–12". */
export function describeSpan(doc: ExchangeDocument | null, span: AnnotationSpan | null): string {
  if (!span) return 'whole exchange';
  const title = doc?.fields.find((f) => f.field === span.field)?.title ?? span.field;
  return `${title}, characters ${span.start}–${span.end}`;
}

/** Line/character of an offset (the editor's Position), counting \n only, as the document has no \r. */
export function positionAt(text: string, offset: number): { line: number; character: number } {
  let line = 0;
  let lineStart = 0;
  for (let i = 0; i < Math.min(offset, text.length); i++) {
    if (text.charCodeAt(i) === 10) {
      line += 1;
      lineStart = i + 1;
    }
  }
  return { line, character: Math.min(offset, text.length) - lineStart };
}

export function offsetAt(text: string, pos: { line: number; character: number }): number {
  let line = 0;
  let i = 0;
  while (line < pos.line && i < text.length) {
    if (text.charCodeAt(i) === 10) line += 1;
    i += 1;
  }
  let end = text.indexOf('\n', i);
  if (end < 0) end = text.length;
  return Math.min(i + pos.character, end);
}

// ---------------------------------------------------------------------------------------------------
// Document addresses: absp-exchange:/<run id>/round-0001/<exchange id>.absp-exchange?run=<dir>&round=1&exchange=<id>

export interface ExchangeAddress {
  runDir: string;
  round: number;
  exchange: string;
}

export function exchangeUriParts(a: ExchangeAddress, runLabel: string): { scheme: string; path: string; query: string } {
  const query = new URLSearchParams({ run: a.runDir, round: String(a.round), exchange: a.exchange }).toString();
  const safe = (s: string) => s.replace(/[/\\?#]/g, '_');
  return { scheme: EXCHANGE_SCHEME, path: `/${safe(runLabel)}/${roundDirName(a.round)}/${safe(a.exchange)}${EXCHANGE_EXTENSION}`, query };
}

export function parseExchangeQuery(query: string): ExchangeAddress | null {
  const q = new URLSearchParams(query);
  const runDir = q.get('run');
  const round = Number(q.get('round'));
  const exchange = q.get('exchange');
  if (!runDir || !exchange || !Number.isInteger(round) || round < 0) return null;
  return { runDir, round, exchange };
}
