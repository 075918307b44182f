/**
 * The sandbox's game seeds (what the attacker is asked to rewrite, or what goes to the defender unchanged)
 * and its capability items (checkable tasks, asked plainly, never attacked).
 */
import { HARMFUL_INTENTS, BENIGN_INTENTS, LOOKS_HARMFUL_INTENTS, TASK_INTENTS, type IntentClass, type Intent } from './intents';

export interface SandboxSeed {
  /** `<intent id>#<form index>`, stable across versions as long as the catalogue keeps its order. */
  readonly id: string;
  readonly prompt: string;
  readonly harmful: boolean;
  readonly intent: string;
  readonly class: IntentClass;
}

function seedOf(intent: Intent, form: number): SandboxSeed {
  return { id: `${intent.id}#${form}`, prompt: intent.forms[form], harmful: intent.class === 'harmful', intent: intent.id, class: intent.class };
}

function everyForm(intents: readonly Intent[]): SandboxSeed[] {
  return intents.flatMap((intent) => intent.forms.map((_, form) => seedOf(intent, form)));
}

/** Every plain form of every harmful intent (60 seeds). */
export function harmfulSeeds(): SandboxSeed[] {
  return everyForm(HARMFUL_INTENTS);
}

/** Every plain form of every benign and harmful-looking intent (72 seeds). */
export function benignSeeds(): SandboxSeed[] {
  return [...everyForm(BENIGN_INTENTS), ...everyForm(LOOKS_HARMFUL_INTENTS)];
}

/** The self-play seed set: harmful seeds, then benign and harmful-looking ones. */
export function gameSeeds(): SandboxSeed[] {
  return [...harmfulSeeds(), ...benignSeeds()];
}

/**
 * One item per task (110): the form rotates with the task's position so that all three wordings are
 * measured. These items are also in the pretraining corpus, so accuracy on them measures whether
 * training kept a capability, not whether the model generalises to unseen sums.
 */
export function capabilitySeeds(): SandboxSeed[] {
  return TASK_INTENTS.map((task, i) => seedOf(task, i % task.forms.length));
}
