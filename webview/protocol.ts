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
  MedianIntervalSchema,
  ModeSchema,
  NashGapRecordSchema,
  RoundInfoSchema,
  RunEventSchema,
  RunInfoSchema,
  RunStatusSchema,
  SAFE_ID,
  describeIssues,
} from '../extension/rundir/schema';
import { AdapterDiffSchema, ReplayJobSchema, ReplayResultSchema } from '../extension/panel-worker/protocol';

// What the panels use of the run's records and of the panel worker's results, so that webview code
// imports only webview/ and this file.
export { MAX_REPLAY_SAMPLES, ModuleDiffSchema, ReplayResultSchema, type ModuleDiff, type ReplayResult, type ReplaySamples } from '../extension/panel-worker/protocol';
export { type Annotation, type EvalMetric, type Exchange, type JudgeLabels, type Utterance } from '../extension/rundir/schema';
export { HEADLINE_METRICS, type RoundMetricSpec } from '../extension/rundir/metrics';
export { OUTCOMES, OUTCOME_WORDS, outcomeOf, outcomeOfLabels, type Outcome, type OutcomeLabels } from '../extension/rundir/outcome';

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

/** Round metrics of one complete round (round.json), for the runs table. */
export const RoundMetricsSchema = z.object({ round: z.number().int().min(0), metrics: z.record(z.string(), z.number().nullable()) });

/** One row of the runs list: enough to pick a run, or the reason it cannot be opened. */
export const RunSummarySchema = z.object({
  run: runKey,
  label: z.string(),
  /** run.json's id: a run's colour in the panels comes from it. (`label` is "name · start time".) */
  id: z.string().optional(),
  /** Round 0's metrics (before training) and the last complete round's (after), when there are any. */
  before: RoundMetricsSchema.nullable().optional(),
  after: RoundMetricsSchema.nullable().optional(),
  mode: ModeSchema.nullable(),
  status: EffectiveStatusSchema.nullable(),
  rounds_completed: z.number().int().min(0).nullable(),
  rounds_planned: z.number().int().min(0).nullable(),
  /** Adapter folders present per complete round, e.g. {"1": ["attacker", "defender"]}. */
  adapters: z.record(z.string(), z.array(z.string())).optional(),
  error: z.object({ kind: RunErrorKindSchema, message: z.string() }).nullable(),
});
export type RunSummary = z.infer<typeof RunSummarySchema>;

/**
 * The round metrics a sweep's curves are sent for (the dashboard's per-round charts): per mode and
 * round, the median over the seeds that reached the round with its 95% interval.
 */
export const SWEEP_CURVE_METRICS = ['nash_gap'] as const;

/** A median over seeds with its 95% interval (null where no seed measured it); `n` seeds behind it. */
export const SweepCurvePointSchema = MedianIntervalSchema.extend({ round: z.number().int().min(0) });

/** One method (mode) of a sweep: its statistics over the seeds whose run of it completed. */
export const SweepModeSummarySchema = z.object({
  mode: ModeSchema,
  /** Seeds whose run of this mode completed: the medians and intervals are over these. */
  seeds: z.array(z.number().int().min(0)),
  /** Runs of this mode the sweep plans, and how many have started. */
  planned: z.number().int().min(0),
  started: z.number().int().min(0),
  /** Median and 95% interval over seeds of each headline metric before training (round 0) and after (the last round). */
  before: z.record(z.string(), MedianIntervalSchema),
  after: z.record(z.string(), MedianIntervalSchema),
  /** Per metric (SWEEP_CURVE_METRICS), per round: the median and interval over the seeds that reached it. */
  curves: z.record(z.string(), z.array(SweepCurvePointSchema)),
});
export type SweepModeSummary = z.infer<typeof SweepModeSummarySchema>;

/** A sweep of seeds (sweep.json and its runs), summarised by the host: a row per method in the runs table. */
export const SweepOverviewSchema = z.object({
  /** The sweep's key: its folder, as runs are keyed by theirs. */
  sweep: runKey,
  /** "name · start time", distinct among the sweeps. */
  label: z.string(),
  /** sweep.json's id: the colours of its rows come from it. */
  id: z.string(),
  /** sweep.json's name and creation time (the label is made from them). */
  name: z.string(),
  created: z.string().nullable(),
  status: EffectiveStatusSchema.nullable(),
  seeds: z.array(z.number().int().min(0)),
  /** The method first, then its baselines. */
  modes: z.array(SweepModeSummarySchema),
  error: z.object({ kind: RunErrorKindSchema, message: z.string() }).nullable(),
});
export type SweepOverview = z.infer<typeof SweepOverviewSchema>;

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
    /** The sweeps of seeds there are (each a row per method in the dashboard's runs table). */
    sweeps: z.array(SweepOverviewSchema).default([]),
    /** Runs the host wants shown (e.g. the one the user clicked); the panel's saved state wins otherwise. */
    focus: z.object({ runs: z.array(runKey), round: z.number().int().optional(), exchange: z.string().optional() }).nullable(),
  }),
  /** The runs list changed (a run started, finished, or was removed), or a sweep did. */
  z.object({ type: z.literal('runs'), runs: z.array(RunSummarySchema), sweeps: z.array(SweepOverviewSchema).default([]) }),
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
    /** Answers to sample (1 when absent); several give a compliance and a harm rate with intervals. */
    samples: ReplayJobSchema.shape.samples,
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
