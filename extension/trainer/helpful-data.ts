/**
 * Benign helpful data for the auxiliary supervised loss that keeps the defender helpful (Self-RedTeam
 * adds such a loss to the self-play objective). The sandbox provides its own: every plain form of its
 * benign and harmful-looking requests with a compliant answer, and its checkable tasks in the two
 * wordings that capability evaluation does not use. Other worlds give a JSONL file of
 * {"prompt": ..., "response": ...}.
 */
import * as fs from 'node:fs';
import { BENIGN_INTENTS, LOOKS_HARMFUL_INTENTS, TASK_INTENTS } from '../sandbox/intents';
import { compliantResponse, correctTaskResponse } from '../sandbox/responses';
import { capabilitySeeds } from '../sandbox/seeds';

export interface HelpfulExample {
  prompt: string;
  response: string;
}

export function sandboxHelpfulData(): HelpfulExample[] {
  const out: HelpfulExample[] = [];
  for (const intent of [...BENIGN_INTENTS, ...LOOKS_HARMFUL_INTENTS]) {
    intent.forms.forEach((prompt, form) => out.push({ prompt, response: compliantResponse(intent, form % 3) }));
  }
  const evaluated = new Set(capabilitySeeds().map((s) => s.prompt));
  for (const task of TASK_INTENTS) {
    for (const prompt of task.forms) if (!evaluated.has(prompt)) out.push({ prompt, response: correctTaskResponse(task) });
  }
  return out;
}

export function loadHelpfulData(file: string): HelpfulExample[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read the helpful data (${(e as Error).message})`);
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const out = lines.map((line, i) => {
    let v: { prompt?: unknown; response?: unknown };
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof v?.prompt !== 'string' || typeof v.response !== 'string' || !v.prompt || !v.response) {
      throw new Error(`${file}:${i + 1}: expected {"prompt": "...", "response": "..."} with non-empty strings`);
    }
    return { prompt: v.prompt, response: v.response };
  });
  if (out.length === 0) throw new Error(`${file}: has no examples`);
  return out;
}
