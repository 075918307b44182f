/** The run-directory library: schemas, the trainer's writer, the readers' reader, annotations. */
export * from './schema';
export * from './outcome';
export {
  SLOT_ORDER,
  completeRoundNumbers,
  parseRoundName,
  realFolderInRun,
  roleSlots,
  roundDirName,
  roundFolderNumbers,
  runLayout,
  savedSlots,
  slotRelPath,
  transcriptFileName,
  transcriptRoundNumbers,
  type PolicySlot,
  type RoleSlots,
  type RunLayout,
  type SavedSlot,
  type WeightsKind,
} from './layout';
export { JsonlTail, MAX_LINE_BYTES, readJsonl, type SkippedLine, type TailRead } from './jsonl';
export { checkTrainer, isTrainerCommand, processCommandLine, processStartToken, signalTrainer, type SignalResult, type TrainerCheck } from './liveness';
export {
  RunWriter,
  RunWriterError,
  terminateTornLine,
  type EventInput,
  type ExchangeInput,
  type NashGapInput,
  type NewRun,
  type RoundSummary,
  type WriterOptions,
} from './writer';
export {
  RunDirError,
  RunFollower,
  RunReader,
  effectiveStatus,
  isPidAlive,
  listRuns,
  readRunInfo,
  validityRule,
  type AttemptStamped,
  type EffectiveStatus,
  type EvalEntry,
  type FollowOptions,
  type LivenessProbe,
  type RunDelta,
  type RunDirErrorKind,
  type RunIssue,
  type RunListing,
  type RunSnapshot,
} from './reader';
export {
  annotatedSeeds,
  appendAnnotationRecord,
  deleteAnnotation,
  foldAnnotations,
  newAnnotationId,
  putAnnotation,
  readAnnotations,
  writeSeedsFile,
  type AnnotationInput,
  type SeedExport,
} from './annotations';
export { exportAnnotatedSeeds } from './export-seeds';
