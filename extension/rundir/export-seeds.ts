/** `absp`'s "export annotated failures": a run's annotations turned into a seeds file for the next run. */
import { annotatedSeeds, writeSeedsFile, type SeedExport } from './annotations';
import { RunReader } from './reader';
import type { AnnotationLabel } from './schema';

/** Writes the seeds of a run's annotated failures to `file` and says what was written and missed. */
export function exportAnnotatedSeeds(runDir: string, file: string, labels?: readonly AnnotationLabel[]): SeedExport {
  const reader = RunReader.open(runDir);
  const result = annotatedSeeds(reader.annotations(), (round) => reader.transcript(round), labels);
  writeSeedsFile(file, result.seeds);
  return result;
}
