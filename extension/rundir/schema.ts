/**
 * The run directory's records as zod schemas, with their TypeScript types inferred from them.
 * docs/run-directory.md is the contract; this file is its executable form. Unknown keys are accepted and
 * dropped (not rejected), so a version-1 reader reads what a later version-1 writer adds to a record:
 * only a new major version may change the meaning of what is already there.
 *
 * Nothing here touches Node APIs: the webviews bundle this file to validate what the host sends them.
 */
import { z } from 'zod';

export const RUN_FORMAT = 'absp-run';
export const FORMAT_VERSION = 1;

export const ROLES = ['attacker', 'defender'] as const;
export const RoleSchema = z.enum(ROLES);
export type Role = z.infer<typeof RoleSchema>;

/** Adapter folders inside a round: one per role, `shared` in shared-lora mode, `model` in shared-full. */
export const AdapterSlotSchema = z.enum(['attacker', 'defender', 'shared', 'model']);
export type AdapterSlot = z.infer<typeof AdapterSlotSchema>;

export const MODES = ['bipolicy', 'shared-lora', 'shared-full', 'attacker-only', 'defender-only'] as const;
export const ModeSchema = z.enum(MODES);
export type Mode = z.infer<typeof ModeSchema>;

export const RUN_STATUSES = ['running', 'completed', 'failed', 'paused', 'stopped'] as const;
export const RunStatusSchema = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof RunStatusSchema>;

const isoTime = z.string().min(1).max(64);
/**
 * Ids that reach file names, document addresses, annotations and log lines (exchange and annotation
 * ids): letters, digits and `._:-`, at most 128 characters, so no id can hold a path, a shell
 * expansion or a newline.
 */
export const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const safeId = z.string().regex(SAFE_ID, 'must be 1-128 letters, digits or ._:- (starting with a letter or digit)');
const attempt = z.number().int().min(1);
const round = z.number().int().min(0);
/** Metric values are numbers; null stands for "not measured in this step" (JSON has no NaN). */
const metrics = z.record(z.string(), z.number().nullable());

// ---------------------------------------------------------------------------------------------------
// run.json and config.json

export const RunInfoSchema = z.object({
  format: z.literal(RUN_FORMAT),
  version: z.number().int().min(1),
  id: z.string().min(1).max(255),
  name: z.string().max(255),
  created: isoTime,
  updated: isoTime,
  status: RunStatusSchema,
  reason: z.string().nullable(),
  attempt,
  /** The trainer's process; never 0, 1 or negative (those would name every process, or a group). */
  pid: z.number().int().min(2).max(2 ** 31 - 1).nullable(),
  /** The machine the pid belongs to; a run.json without it cannot be checked or stopped from here. */
  host: z.string().max(255).optional(),
  /** When that process started (liveness.ts): tells the trainer from a later process given its pid. */
  pid_start: z.string().max(200).optional(),
  mode: ModeSchema,
  engine: z.string(),
  /** Where the engine ran ("cpu", "cuda:0", "cuda:0-7" under torchrun) and in which precision. */
  device: z.string().optional(),
  dtype: z.string().optional(),
  base_model: z.string(),
  rounds_planned: z.number().int().min(0),
  rounds_completed: z.number().int().min(0),
  roles: z.array(z.string()),
});
export type RunInfo = z.infer<typeof RunInfoSchema>;

/** The resolved trainer config: its schema belongs to the trainer, so here it is any JSON object. */
export const ConfigDocumentSchema = z.record(z.string(), z.unknown());
export type ConfigDocument = z.infer<typeof ConfigDocumentSchema>;

// ---------------------------------------------------------------------------------------------------
// events.jsonl

export const StartEventSchema = z.object({
  type: z.literal('start'),
  t: isoTime,
  attempt,
  round,
  config_hash: z.string(),
});

export const StepEventSchema = z.object({
  type: z.literal('step'),
  t: isoTime,
  attempt,
  round,
  step: z.number().int().min(0),
  phase: z.enum(['attacker', 'defender', 'both']),
  metrics,
});

export const RoundEventSchema = z.object({
  type: z.literal('round'),
  t: isoTime,
  attempt,
  round,
  metrics,
});

export const ResumeEventSchema = z.object({
  type: z.literal('resume'),
  t: isoTime,
  attempt,
  round,
  from_round: round,
});

export const StatusEventSchema = z.object({
  type: z.literal('status'),
  t: isoTime,
  attempt,
  round: round.optional(),
  status: RunStatusSchema,
  reason: z.string().nullable().optional(),
});

export const LogEventSchema = z.object({
  type: z.literal('log'),
  t: isoTime,
  attempt,
  round: round.optional(),
  level: z.enum(['debug', 'info', 'warn', 'error']),
  message: z.string(),
});

export const RunEventSchema = z.discriminatedUnion('type', [
  StartEventSchema,
  StepEventSchema,
  RoundEventSchema,
  ResumeEventSchema,
  StatusEventSchema,
  LogEventSchema,
]);
export type RunEvent = z.infer<typeof RunEventSchema>;
export type StepEvent = z.infer<typeof StepEventSchema>;
export type RoundEvent = z.infer<typeof RoundEventSchema>;
export type StatusEvent = z.infer<typeof StatusEventSchema>;
export type LogEvent = z.infer<typeof LogEventSchema>;

// ---------------------------------------------------------------------------------------------------
// transcripts/round-NNNN.jsonl

export const UtteranceSchema = z.object({
  /** The hidden chain of thought (inside <think>…</think>); never shown to the opponent or the judge. */
  thought: z.string().nullable(),
  /** What was passed on to the opponent and the judge. */
  text: z.string(),
  raw: z.string(),
});
export type Utterance = z.infer<typeof UtteranceSchema>;

export const TurnSchema = z.object({
  attacker: UtteranceSchema.nullable(),
  defender: UtteranceSchema,
});
export type Turn = z.infer<typeof TurnSchema>;

export const SeedSchema = z.object({
  prompt: z.string(),
  harmful: z.boolean(),
  source: z.string().optional(),
  intent: z.string().optional(),
});
export type Seed = z.infer<typeof SeedSchema>;

/** true, false, or null when the judge's output could not be parsed. */
const label = z.boolean().nullable();

export const JudgeLabelsSchema = z.object({
  prompt_harmful: label,
  refusal: label,
  response_harmful: label,
  faithful: label.optional(),
  well_formed: z.object({ attacker: label.optional(), defender: label.optional() }).optional(),
  unparsable: z.boolean(),
});
export type JudgeLabels = z.infer<typeof JudgeLabelsSchema>;

export const RewardsSchema = z.object({
  attacker: z.number().nullable(),
  defender: z.number().nullable(),
  components: z.record(z.string(), z.number()).optional(),
});
export type Rewards = z.infer<typeof RewardsSchema>;

export const ExchangeSchema = z.object({
  id: safeId,
  attempt,
  round,
  step: z.number().int().min(0),
  seed: SeedSchema,
  /** The seed instance within the step (GRPO's group: its samples are compared with each other); absent in older runs. */
  group: z.number().int().min(0).optional(),
  attacked: z.boolean(),
  turns: z.array(TurnSchema).min(1),
  judge: JudgeLabelsSchema,
  rewards: RewardsSchema,
  /** Adapters that played, relative to the run directory; "base" for the frozen base. */
  adapters: z.record(z.string(), z.string().nullable()),
  /** Per role, the fingerprint of the weights that sampled its turns (null: the frozen base). */
  fingerprints: z.record(z.string(), z.string().nullable()).optional(),
});
export type Exchange = z.infer<typeof ExchangeSchema>;

// ---------------------------------------------------------------------------------------------------
// rounds/round-NNNN/round.json

export const RoundInfoSchema = z.object({
  round,
  attempt,
  completed: isoTime,
  steps: z.tuple([z.number().int(), z.number().int()]).nullable(),
  roles: z.array(z.string()),
  metrics,
  exchanges: z.number().int().min(0),
  /**
   * Per adapter folder written in the round: the fingerprint of its weights (engine/fingerprint.ts).
   * Absent in runs written before fingerprints were recorded.
   */
  fingerprints: z.record(z.string(), z.string()).optional(),
});
export type RoundInfo = z.infer<typeof RoundInfoSchema>;

// ---------------------------------------------------------------------------------------------------
// nashgap.jsonl

export const NashGapRecordSchema = z.object({
  attempt,
  round,
  method: z.enum(['exact', 'estimated']),
  nash_gap: z.number(),
  defender_exploitability: z.number().nullable(),
  attacker_gap: z.number().nullable(),
  best_response_asr: z.number().nullable(),
  per_seed: z
    .array(z.object({ seed: z.string(), best_prompt: z.string().nullable(), value: z.number() }))
    .optional(),
  /** For estimated gaps: the best-response training budget; null for exact values. */
  budget: z.object({ steps: z.number().int(), samples: z.number().int() }).nullable(),
});
export type NashGapRecord = z.infer<typeof NashGapRecordSchema>;

// ---------------------------------------------------------------------------------------------------
// crossplay.json

export const CrossplayPlayerSchema = z.object({
  label: z.string(),
  run: z.string(),
  round: z.number().int().min(0).nullable(),
  path: z.string(),
});
export type CrossplayPlayer = z.infer<typeof CrossplayPlayerSchema>;

const matrix = z.array(z.array(z.number().nullable()));

export const CrossplaySchema = z
  .object({
    version: z.number().int().min(1),
    method: z.enum(['exact', 'estimated']),
    attackers: z.array(CrossplayPlayerSchema),
    defenders: z.array(CrossplayPlayerSchema),
    asr: matrix,
    ci95: matrix.optional(),
    samples: z.number().int().min(0),
  })
  .superRefine((c, ctx) => {
    const shapeOk = (m: (number | null)[][]) =>
      m.length === c.attackers.length && m.every((row) => row.length === c.defenders.length);
    if (!shapeOk(c.asr)) ctx.addIssue({ code: 'custom', path: ['asr'], message: `must be ${c.attackers.length}×${c.defenders.length} (attackers × defenders)` });
    if (c.ci95 && !shapeOk(c.ci95)) ctx.addIssue({ code: 'custom', path: ['ci95'], message: 'must have the shape of asr' });
  });
export type Crossplay = z.infer<typeof CrossplaySchema>;

// ---------------------------------------------------------------------------------------------------
// eval/<name>.json

export const EvalMetricSchema = z.object({
  value: z.number().nullable(),
  /** 95% confidence interval [low, high]. */
  ci95: z.tuple([z.number(), z.number()]).nullable().optional(),
  n: z.number().int().min(0).optional(),
});
export type EvalMetric = z.infer<typeof EvalMetricSchema>;

export const EvalResultSchema = z.object({
  version: z.number().int().min(1),
  name: z.string().min(1),
  created: isoTime,
  data: z.string(),
  /** The judge that labelled the answers (e.g. "refusal-detector", "guard:DIR"). */
  judge: z.string().optional(),
  /** The model directory, when a model was evaluated on its own (`absp eval --model`). */
  model: z.string().optional(),
  adapters: z.record(z.string(), z.string().nullable()),
  metrics: z.record(z.string(), EvalMetricSchema),
});
export type EvalResult = z.infer<typeof EvalResultSchema>;

// ---------------------------------------------------------------------------------------------------
// annotations.jsonl

export const ANNOTATION_LABELS = ['jailbreak', 'over-refusal', 'judge-error', 'other'] as const;
export const AnnotationLabelSchema = z.enum(ANNOTATION_LABELS);
export type AnnotationLabel = z.infer<typeof AnnotationLabelSchema>;

export const AnnotationSpanSchema = z
  .object({ field: z.string().min(1), start: z.number().int().min(0), end: z.number().int().min(0) })
  .refine((s) => s.end >= s.start, { message: 'span end must not precede its start' });
export type AnnotationSpan = z.infer<typeof AnnotationSpanSchema>;

export const AnnotationPutSchema = z.object({
  op: z.literal('put'),
  id: safeId,
  exchange: safeId,
  round,
  label: AnnotationLabelSchema,
  note: z.string(),
  span: AnnotationSpanSchema.nullable(),
  created: isoTime,
  updated: isoTime,
});
export const AnnotationDeleteSchema = z.object({
  op: z.literal('delete'),
  id: safeId,
  updated: isoTime,
});
export const AnnotationRecordSchema = z.discriminatedUnion('op', [AnnotationPutSchema, AnnotationDeleteSchema]);
export type AnnotationRecord = z.infer<typeof AnnotationRecordSchema>;
export type Annotation = z.infer<typeof AnnotationPutSchema>;

/** One line of a seeds file, the format the trainer reads seeds from. */
export const SeedLineSchema = z.object({ prompt: z.string().min(1), harmful: z.boolean() });
export type SeedLine = z.infer<typeof SeedLineSchema>;

// ---------------------------------------------------------------------------------------------------
// A sweep: sweep.json and summary.json (one run directory per seed and method, in one folder)

export const SWEEP_FORMAT = 'absp-sweep';
export const SWEEP_FORMAT_VERSION = 1;

/** A folder name inside the sweep: no separators and no leading dot, so never "." or "..". */
export const FolderNameSchema = z
  .string()
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a folder name of letters, digits, ".", "_" and "-"');

const seedNumber = z.number().int().min(0);

/** One planned run of the sweep: its seed, its mode, and its folder inside the sweep. */
export const SweepRunSchema = z.object({ seed: seedNumber, mode: ModeSchema, id: FolderNameSchema });
export type SweepRun = z.infer<typeof SweepRunSchema>;

export const SweepInfoSchema = z.object({
  format: z.literal(SWEEP_FORMAT),
  version: z.number().int().min(1),
  id: FolderNameSchema,
  name: z.string(),
  created: isoTime,
  updated: isoTime,
  status: RunStatusSchema,
  reason: z.string().nullable(),
  pid: z.number().int().nullable(),
  host: z.string().optional(),
  /** When the writing process started (as run.json's `pid_start`): a reused pid is not taken for it. */
  pid_start: z.string().max(200).optional(),
  seeds: z.array(seedNumber).min(1).max(10_000),
  /** The method first, then its baselines. */
  modes: z.array(ModeSchema).min(1),
  runs: z.array(SweepRunSchema).max(100_000),
});
export type SweepInfo = z.infer<typeof SweepInfoSchema>;

/** A median over seeds with its 95% bootstrap interval; null where no seed measured it. */
export const MedianIntervalSchema = z.object({ median: z.number().nullable(), low: z.number().nullable(), high: z.number().nullable(), n: z.number().int().min(0) });
export type MedianIntervalRecord = z.infer<typeof MedianIntervalSchema>;

export const SweepMetricSchema = z.object({ key: z.string(), label: z.string(), better: z.enum(['lower', 'higher']) });
export type SweepMetric = z.infer<typeof SweepMetricSchema>;

export const SweepSummarySchema = z.object({
  version: z.number().int().min(1),
  sweep: z.string(),
  created: isoTime,
  main: ModeSchema,
  seeds: z.array(seedNumber),
  metrics: z.array(SweepMetricSchema),
  /** Per mode: over its seeds with a completed run, the median and interval of each metric before training, after, and of the change. */
  modes: z.array(
    z.object({
      mode: ModeSchema,
      seeds: z.array(seedNumber),
      before: z.record(z.string(), MedianIntervalSchema),
      after: z.record(z.string(), MedianIntervalSchema),
      change: z.record(z.string(), MedianIntervalSchema),
      /** Seeds whose best-response attack success fell to half its value before training or less. */
      weak_spot_halved: z.number().int().min(0),
    }),
  ),
  /** The main mode against each baseline, seed by seed on the final round: a − b. */
  paired: z.array(
    z.object({
      a: ModeSchema,
      b: ModeSchema,
      metric: z.string(),
      difference: MedianIntervalSchema,
      wins_a: z.number().int().min(0),
      wins_b: z.number().int().min(0),
      ties: z.number().int().min(0),
    }),
  ),
  per_seed: z.array(z.object({ seed: seedNumber, mode: ModeSchema, run: z.string(), status: z.string(), before: metrics, after: metrics })),
});
export type SweepSummary = z.infer<typeof SweepSummarySchema>;

// ---------------------------------------------------------------------------------------------------

/** A short, readable account of why a value failed its schema (first few problems, with their paths). */
export function describeIssues(error: z.ZodError, max = 3): string {
  const parts = error.issues.slice(0, max).map((i) => {
    const where = i.path.length ? i.path.map(String).join('.') : '(root)';
    return `${where}: ${i.message}`;
  });
  if (error.issues.length > max) parts.push(`and ${error.issues.length - max} more`);
  return parts.join('; ');
}
