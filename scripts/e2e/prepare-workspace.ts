/**
 * The end-to-end test's workspace: a tiny random model that speaks the sandbox's vocabulary, a run
 * config that trains on it in a few seconds, the two recorded sandbox runs of the panel tests (so the
 * dashboard has three runs to overlay, and the stepper a known off-topic compliance), and a damaged run
 * directory the Runs view must show as such (not hide, not crash on).
 *
 *   npx tsx scripts/e2e/prepare-workspace.ts WORKSPACE
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FIXTURE_DIR } from '../../test/fixtures/make-recorded-run';
import { writeTinySandboxModel } from '../../test/helpers/random-checkpoint';

const workspace = path.resolve(process.argv[2] ?? '');
if (!process.argv[2]) {
  console.error('usage: prepare-workspace.ts WORKSPACE');
  process.exit(2);
}
fs.mkdirSync(workspace, { recursive: true });
const model = writeTinySandboxModel(path.join(workspace, 'tiny-model'));
const config = {
  name: 'tiny',
  // Absolute: `absp` resolves a relative model path against its working directory.
  model,
  rounds: 2,
  steps_per_round: 3,
  game: { seeds_per_step: 4, max_new_tokens: { attacker: 5, defender: 5 } },
  evaluation: { nash_gap: false, crossplay: false },
  // One run, no baseline after it: the test watches this run's completion.
  baselines: [],
};
fs.writeFileSync(path.join(workspace, 'tiny.absp.json'), `${JSON.stringify(config, null, 2)}\n`);
// A run long enough to be stopped while it trains (Stop asks first, and says what resume redoes).
fs.writeFileSync(path.join(workspace, 'long.absp.json'), `${JSON.stringify({ ...config, name: 'long', rounds: 40, steps_per_round: 3 }, null, 2)}\n`);
for (const run of fs.readdirSync(FIXTURE_DIR)) fs.cpSync(path.join(FIXTURE_DIR, run), path.join(workspace, 'runs', run), { recursive: true });
const broken = path.join(workspace, 'runs', 'broken-run');
fs.mkdirSync(broken, { recursive: true });
fs.writeFileSync(path.join(broken, 'run.json'), '{"format": "absp-run", "version": 1, "id": ');
