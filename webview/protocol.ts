/**
 * The messages between the extension host and the webview panels, shared by both sides. Each side
 * validates every message it receives with these schemas: a webview is a separate program that may be
 * older or newer than the host (after an update, a restored panel runs the old bundle for a moment),
 * and a message of the wrong shape must become a visible error, never a crash or a blank panel.
 *
 * Run data travels in the run directory's own record types (extension/rundir/schema.ts), so the
 * panels understand exactly what the trainer wrote.
 */
import { z } from 'zod';
import {
  AnnotationPutSchema,
  CrossplaySchema,
  EvalResultSchema,
  ExchangeSchema,
  ModeSchema,
  NashGapRecordSchema,
  RoundInfoSchema,
  RunEventSchema,
  RunInfoSchema,
  RunStatusSchema,
  SAFE_ID,
  describeIssues,
} from '../extension/rundir/schema';
import { AdapterDiffSchema, ReplayResultSchema } from '../extension/panel-worker/protocol';

// What the panels use of the run's records and of the panel worker's results, so that webview code
// imports only webview/ and this file.
export { ModuleDiffSchema, ReplayResultSchema, type ModuleDiff, type ReplayResult } from '../extension/panel-worker/protocol';
export type { Annotation, EvalMetric, Exchange, Utterance } from '../extension/rundir/schema';
export { outcomeOf, type Outcome } from '../extension/rundir/outcome';

/** Bumped when a message changes incompatibly; a mismatch is shown instead of misread. */
export const PROTOCOL_VERSION = 1;

export const PanelKindSchema = z.enum(['dashboard', 'stepper', 'adapter-diff']);
export type PanelKind = z.infer<typeof PanelKindSchema>;

/** Runs are named by an opaque key the host chooses (their folder, typically). */
const runKey = z.string().min(1).max(4096);
const requestId = z.string().min(1).max(200);
/** An exchange id as a panel names it: the run directory's id rule (letters, digits, ._:-). */
const exchangeId = z.string().regex(SAFE_ID, 'must be an exchange id (letters, digits, ._:-)');

export const EffectiveStatusSchema = z.union([RunStatusSchema, z.literal('interrupted')]);

export const RunErrorKindSchema = z.enum(['not-a-run', 'newer-format', 'corrupt', 'unreadable', 'other']);
export type RunErrorKind = z.infer<typeof RunErrorKindSchema>;

/** One row of the runs list: enough to pick a run, or the reason it cannot be opened. */
export const RunSummarySchema = z.object({
  run: runKey,
  label: z.string(),
  mode: ModeSchema.nullable(),
  status: EffectiveStatusSchema.nullable(),
  rounds_completed: z.number().int().min(0).nullable(),
  rounds_planned: z.number().int().min(0).nullable(),
  /** Adapter folders present per complete round, e.g. {"1": ["attacker", "defender"]}. */
  adapters: z.record(z.string(), z.array(z.string())).optional(),
  error: z.object({ kind: RunErrorKindSchema, message: z.string() }).nullable(),
});
export type RunSummary = z.infer<typeof RunSummarySchema>;

export const RunIssueSchema = z.object({ file: z.string(), line: z.number().int().optional(), problem: z.string() });

/** Everything the dashboard needs about one run (transcripts travel separately, a round at a time). */
export const RunDataSchema = z.object({
  run: runKey,
  info: RunInfoSchema,
  status: EffectiveStatusSchema,
  rounds: z.array(RoundInfoSchema),
  events: z.array(RunEventSchema),
  nashgap: z.array(NashGapRecordSchema),
  crossplay: CrossplaySchema.nullable(),
  /** Results of `absp eval` on this run's defender, by file name. */
  evals: z.array(z.object({ name: z.string().min(1), result: EvalResultSchema })),
  transcriptRounds: z.array(z.number().int().min(0)),
  /** Damage the reader worked around: skipped lines, unreadable documents. */
  issues: z.array(RunIssueSchema),
});
export type RunData = z.infer<typeof RunDataSchema>;

export const AdapterRefSchema = z.object({
  run: runKey,
  round: z.number().int().min(0),
  /** Adapter folder in the round: attacker, defender or shared (a plain folder name, never a path). */
  slot: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be an adapter folder name'),
});
export type AdapterRef = z.infer<typeof AdapterRefSchema>;

/** The panel worker's diff, with the two adapters named as the panel named them. */
export const AdapterDiffResultSchema = AdapterDiffSchema.pick({ modules: true, onlyLeft: true, onlyRight: true, warnings: true }).extend({
  left: AdapterRefSchema,
  right: AdapterRefSchema,
});
export type AdapterDiffResult = z.infer<typeof AdapterDiffResultSchema>;

// ---------------------------------------------------------------------------------------------------
// Host → webview

export const HostMessageSchema = z.discriminatedUnion('type', [
  /** The first message after `ready`: which runs exist and which to show. */
  z.object({
    type: z.literal('init'),
    protocol: z.number().int(),
    panel: PanelKindSchema,
    runs: z.array(RunSummarySchema),
    /** Runs the host wants shown (e.g. the one the user clicked); the panel's saved state wins otherwise. */
    focus: z.object({ runs: z.array(runKey), round: z.number().int().optional(), exchange: z.string().optional() }).nullable(),
  }),
  /** The runs list changed (a run started, finished, or was removed). */
  z.object({ type: z.literal('runs'), runs: z.array(RunSummarySchema) }),
  /** A run's whole state: replaces whatever the panel held for it. */
  z.object({ type: z.literal('run-data'), data: RunDataSchema }),
  /** New records of a live run, to append. */
  z.object({
    type: z.literal('run-append'),
    run: runKey,
    info: RunInfoSchema.nullable(),
    status: EffectiveStatusSchema,
    rounds: z.array(RoundInfoSchema),
    events: z.array(RunEventSchema),
    nashgap: z.array(NashGapRecordSchema),
    crossplay: CrossplaySchema.nullable().optional(),
    /** Every eval result, when one of them changed. */
    evals: z.array(z.object({ name: z.string().min(1), result: EvalResultSchema })).optional(),
  }),
  /** The valid exchanges of one round (transcripts are paged by round). */
  z.object({ type: z.literal('transcript'), run: runKey, round: z.number().int().min(0), exchanges: z.array(ExchangeSchema) }),
  /** Exchanges appended to a round's transcript while the run is live. */
  z.object({ type: z.literal('transcript-append'), run: runKey, round: z.number().int().min(0), exchanges: z.array(ExchangeSchema) }),
  /** The annotations in force for a run (the whole set; they are few). */
  z.object({ type: z.literal('annotations'), run: runKey, annotations: z.array(AnnotationPutSchema) }),
  z.object({ type: z.literal('replay-result'), requestId, result: ReplayResultSchema }),
  z.object({ type: z.literal('adapter-diff-progress'), requestId, done: z.number().int().min(0), total: z.number().int().min(0) }),
  z.object({ type: z.literal('adapter-diff-result'), requestId, result: AdapterDiffResultSchema }),
  /**
   * Something went wrong. With a requestId it answers that request (a failed replay or diff); with a
   * run it concerns that run (e.g. it became unreadable); otherwise it concerns the panel as a whole.
   */
  z.object({
    type: z.literal('error'),
    requestId: requestId.optional(),
    run: runKey.optional(),
    kind: RunErrorKindSchema.optional(),
    message: z.string(),
    detail: z.string().optional(),
  }),
]);
export type HostMessage = z.infer<typeof HostMessageSchema>;

// ---------------------------------------------------------------------------------------------------
// Webview → host

export const WebviewMessageSchema = z.discriminatedUnion('type', [
  /** Sent once the panel's script runs; the host answers with init. */
  z.object({ type: z.literal('ready'), panel: PanelKindSchema, protocol: z.number().int() }),
  /** The runs the panel shows; the host sends their run-data and then keeps them live. */
  z.object({ type: z.literal('watch-runs'), runs: z.array(runKey) }),
  z.object({ type: z.literal('request-transcript'), run: runKey, round: z.number().int().min(0) }),
  /** Open the exchange as a read-only document in the editor, to annotate it with comments. */
  z.object({ type: z.literal('annotate'), run: runKey, round: z.number().int().min(0), exchange: exchangeId }),
  /** Play the recorded attack against the defender of another round, in the engine's worker. */
  z.object({
    type: z.literal('replay'),
    requestId,
    run: runKey,
    round: z.number().int().min(0),
    exchange: exchangeId,
    adapterRound: z.number().int().min(0),
  }),
  z.object({ type: z.literal('adapter-diff'), requestId, left: AdapterRefSchema, right: AdapterRefSchema }),
  z.object({ type: z.literal('cancel'), requestId }),
  /** An error inside the webview, for the host's log. */
  z.object({ type: z.literal('webview-error'), message: z.string(), detail: z.string().optional() }),
]);
export type WebviewMessage = z.infer<typeof WebviewMessageSchema>;

// ---------------------------------------------------------------------------------------------------

export type Parsed<T> = { ok: true; message: T } | { ok: false; error: string };

function parseWith<T>(schema: z.ZodType<T>, data: unknown, side: string): Parsed<T> {
  const parsed = schema.safeParse(data);
  if (parsed.success) return { ok: true, message: parsed.data };
  const type = typeof data === 'object' && data !== null && 'type' in data ? JSON.stringify((data as { type: unknown }).type) : 'without a type';
  return { ok: false, error: `${side} message ${type} is malformed: ${describeIssues(parsed.error)}` };
}

export function parseHostMessage(data: unknown): Parsed<HostMessage> {
  return parseWith(HostMessageSchema, data, 'host');
}

export function parseWebviewMessage(data: unknown): Parsed<WebviewMessage> {
  return parseWith(WebviewMessageSchema, data, 'webview');
}
