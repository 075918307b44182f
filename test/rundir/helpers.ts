/** Shared pieces of the run-directory tests: temp folders, a fixed clock, a valid exchange. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExchangeInput, NewRun } from '../../extension/rundir';
import { tempDir as makeTempDir } from '../helpers/temp-dirs';

/** A pid no process has (Linux pids stay below 2^22): a trainer that was killed. */
export const DEAD_PID = 2 ** 22 + 12345;

export function tempDir(prefix = 'absp-rundir-'): string {
  return makeTempDir(prefix);
}

export function fixedClock(start = '2026-01-01T00:00:00.000Z'): () => Date {
  let t = Date.parse(start);
  return () => new Date((t += 1000));
}

export const NEW_RUN: NewRun = {
  id: 'test-run',
  name: 'test-run',
  mode: 'bipolicy',
  engine: 'ort',
  base_model: 'builtin:sandbox',
  rounds_planned: 3,
  roles: ['attacker', 'defender'],
  config: { world: 'sandbox', rounds: 3 },
};

export function exchange(round: number, step: number, i: number, overrides: Partial<ExchangeInput> = {}): ExchangeInput {
  return {
    id: `r${round}-s${step}-${i}`,
    round,
    step,
    seed: { prompt: `seed ${i}`, harmful: i % 2 === 0 },
    attacked: true,
    turns: [{ attacker: { thought: null, text: `attack ${i}`, raw: `attack ${i}` }, defender: { thought: 'hmm', text: `answer ${i}`, raw: `<think>hmm</think>answer ${i}` } }],
    judge: { prompt_harmful: i % 2 === 0, refusal: false, response_harmful: i % 2 === 0, unparsable: false },
    rewards: { attacker: 1, defender: -1 },
    adapters: { attacker: 'rounds/round-0000/attacker', defender: 'rounds/round-0000/defender' },
    ...overrides,
  };
}

/** Every file under dir with its size, mtime and a hash of its bytes: proof that nothing changed. */
export function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const st = fs.statSync(p);
        out[path.relative(dir, p)] = `${st.size}:${st.mtimeMs}:${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
      }
    }
  };
  walk(dir);
  return out;
}
