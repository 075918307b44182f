/**
 * Benign helpful data for the auxiliary supervised loss that keeps the defender helpful (Self-RedTeam
 * adds such a loss to the self-play objective). The sandbox provides its own: every plain form of its
 * benign and harmful-looking requests with a compliant answer, and its checkable tasks in the two
 * wordings that capability evaluation does not use. Other worlds give a JSONL file of
 * {"prompt": ..., "response": ...}.
 */
import { loadJsonl } from '../util/jsonl-loader';
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
  return loadJsonl(file, {
    what: 'the helpful data',
    none: 'has no examples',
    parse: (value, _line, fail) => {
      const v = value as { prompt?: unknown; response?: unknown } | null;
      if (typeof v?.prompt !== 'string' || typeof v.response !== 'string' || !v.prompt || !v.response) {
        fail('expected {"prompt": "...", "response": "..."} with non-empty strings');
      }
      return { prompt: v!.prompt as string, response: v!.response as string };
    },
  });
}
