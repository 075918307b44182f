/**
 * The messages between the extension host and the panel worker (worker.ts), and the results the
 * worker hands back to the panels. Both jobs travel the same way: the host posts a job with an id,
 * the worker answers with progress reports and then one `result` or `error` for that id. Each shape
 * is a schema with its type derived from it; the panels' protocol (webview/protocol.ts) carries the
 * results on, so this file, like the run directory's schemas, touches no Node API.
 */
import { z } from 'zod';
import { EvalMetricSchema, JudgeLabelsSchema, UtteranceSchema } from '../rundir/schema';

// ---------------------------------------------------------------------------------------------------
// Jobs

export const AdapterDiffJobSchema = z.object({
  type: z.literal('adapter-diff'),
  /** The two adapter folders. */
  left: z.string(),
  right: z.string(),
  /** The run's base model (config.json "model"); adapters are checked against it when it is here. */
  baseModel: z.string().nullable(),
});

/** The most answers one replay samples: enough for a ±12-point interval, bounded in time and memory. */
export const MAX_REPLAY_SAMPLES = 64;

export const ReplayJobSchema = z.object({
  type: z.literal('replay'),
  runDir: z.string(),
  /** The recorded exchange: its round and id. */
  round: z.number().int().min(0),
  exchange: z.string(),
  /** The round whose defender answers the recorded attack. */
  adapterRound: z.number().int().min(0),
  /** How many answers to sample (1 when absent): a rate with an interval answers "would it refuse?". */
  samples: z.number().int().min(1).max(MAX_REPLAY_SAMPLES).optional(),
  /**
   * Judge endpoints the user approved (the host's confirmation or settings): the run's config.json is
   * someone else's, and its http judge is used only when its URL and key variable are in this list.
   */
  approvedJudges: z.array(z.object({ url: z.string(), apiKeyEnv: z.string().nullable() })).optional(),
});


export const PanelJobSchema = z.discriminatedUnion('type', [AdapterDiffJobSchema, ReplayJobSchema]);
export type PanelJob = z.infer<typeof PanelJobSchema>;
export type PanelJobKind = PanelJob['type'];
export type PanelJobOf<K extends PanelJobKind> = Extract<PanelJob, { type: K }>;

// ---------------------------------------------------------------------------------------------------
// Results

export const ModuleDiffSchema = z.object({
  key: z.string(),
  layer: z.number().int().nullable(),
  module: z.string(),
  outFeatures: z.number().int(),
  inFeatures: z.number().int(),
  normLeft: z.number(),
  normRight: z.number(),
  /** ‖ΔW_right − ΔW_left‖_F. */
  normDiff: z.number(),
  /** normDiff / normLeft; null when the left update is zero (e.g. a freshly initialised adapter). */
  relativeChange: z.number().nullable(),
  /** ⟨ΔW₁,ΔW₂⟩/(‖ΔW₁‖‖ΔW₂‖); null when either update is zero. */
  cosine: z.number().nullable(),
  sigmaLeft: z.array(z.number()),
  sigmaRight: z.array(z.number()),
  rankLeft: z.number().int(),
  rankRight: z.number().int(),
  /** Principal angles in radians, ascending; empty when either update is zero. */
  columnAngles: z.array(z.number()),
  rowAngles: z.array(z.number()),
  /** Mean squared cosine of the principal angles: 1 = same subspace, 0 = orthogonal. */
  columnOverlap: z.number().nullable(),
  rowOverlap: z.number().nullable(),
});
export type ModuleDiff = z.infer<typeof ModuleDiffSchema>;

const AdapterSummarySchema = z.object({ dir: z.string(), rank: z.number(), alpha: z.number(), rslora: z.boolean() });

export const AdapterDiffSchema = z.object({
  left: AdapterSummarySchema,
  right: AdapterSummarySchema,
  /** Every module the two adapters share, in layer order. */
  modules: z.array(ModuleDiffSchema),
  /** Modules present in only one of the two adapters. */
  onlyLeft: z.array(z.string()),
  onlyRight: z.array(z.string()),
  warnings: z.array(z.string()),
});
export type AdapterDiff = z.infer<typeof AdapterDiffSchema>;

/** The labels a judge gives one replayed answer. */
export const ReplayJudgeSchema = JudgeLabelsSchema.pick({ prompt_harmful: true, refusal: true, response_harmful: true, unparsable: true });

/**
 * A replay of several samples: every answer with its labels, and over the answers the judge could
 * label, the share that complied (did not refuse) and the share judged harmful, each with its 95%
 * Wilson interval and n (util/stats.ts).
 */
export const ReplaySamplesSchema = z.object({
  answers: z.array(z.object({ text: z.string(), thought: z.string().nullable(), judge: ReplayJudgeSchema.nullable() })),
  compliance: EvalMetricSchema,
  harm: EvalMetricSchema,
  /** Answers without labels (unparsable, or the judge failed). */
  unlabelled: z.number().int().min(0),
});
export type ReplaySamples = z.infer<typeof ReplaySamplesSchema>;

export const ReplayResultSchema = z.object({
  exchange: z.string(),
  /** The round whose adapters answered. */
  adapterRound: z.number().int().min(0),
  adapters: z.record(z.string(), z.string().nullable()),
  /** The replayed defender's reply to the recorded attack. */
  defender: UtteranceSchema,
  judge: ReplayJudgeSchema.nullable(),
  elapsed_ms: z.number().min(0).optional(),
  /** With more than one sample: all of them and the rates (the first is `defender` and `judge`). */
  sampled: ReplaySamplesSchema.optional(),
});
export type ReplayResult = z.infer<typeof ReplayResultSchema>;

/** What the worker returns for a replay: the panel's result, and why there are no labels when there are none. */
export const ReplayOutputSchema = ReplayResultSchema.extend({ judgeError: z.string().optional() });
export type ReplayOutput = z.infer<typeof ReplayOutputSchema>;

export interface PanelJobResults {
  'adapter-diff': AdapterDiff;
  replay: ReplayOutput;
}

// ---------------------------------------------------------------------------------------------------
// The wire: host → worker and worker → host

export type WorkerRequest = (PanelJob & { id: number }) | { type: 'shutdown' };

export type WorkerReply =
  | { type: 'progress'; id: number; done: number; total: number }
  | { type: 'result'; id: number; result: PanelJobResults[PanelJobKind] }
  | { type: 'error'; id: number; message: string; cancelled?: boolean };

export interface WorkerData {
  /** Int32Array view: [0] holds the id of a job to abandon. */
  cancel: SharedArrayBuffer;
}
