/** Where each part of a run directory lives (docs/run-directory.md, "Layout"). */
import * as path from 'node:path';
import { roundDirName, transcriptFileName } from './schema';

export const runPaths = (dir: string) => ({
  runJson: path.join(dir, 'run.json'),
  config: path.join(dir, 'config.json'),
  events: path.join(dir, 'events.jsonl'),
  transcripts: path.join(dir, 'transcripts'),
  transcript: (round: number) => path.join(dir, 'transcripts', transcriptFileName(round)),
  rounds: path.join(dir, 'rounds'),
  round: (round: number) => path.join(dir, 'rounds', roundDirName(round)),
  roundJson: (round: number) => path.join(dir, 'rounds', roundDirName(round), 'round.json'),
  crossplay: path.join(dir, 'crossplay.json'),
  nashgap: path.join(dir, 'nashgap.jsonl'),
  evalDir: path.join(dir, 'eval'),
  annotations: path.join(dir, 'annotations.jsonl'),
  log: path.join(dir, 'trainer.log'),
});
