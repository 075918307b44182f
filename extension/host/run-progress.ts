/**
 * What a run is doing, in words, from what it has written so far — for the status bar, the Runs view
 * and the question Stop asks. A run is not silent before its first step: it loads the model, creates
 * the adapters and, with the Nash gap on, measures the initial pair (round 0), which takes a while on a
 * laptop; and each round ends with a measurement too. Pure.
 */
export type RunPhase = 'starting' | 'loading' | 'creating' | 'measuring' | 'training' | 'crossplay' | 'resuming';

export interface RunProgressInput {
  /** The run directory exists (the trainer has created it). */
  hasRunDir: boolean;
  /** A start event (new run) or a resume event of the current attempt has been written. */
  started: boolean;
  resumed: boolean;
  roundsPlanned: number | null;
  stepsPerRound: number | null;
  /** The run measures each round (config evaluation.nash_gap) and ends with cross-play (evaluation.crossplay). */
  measures: boolean;
  crossplay: boolean;
  /** Complete rounds, 0 included. */
  roundsComplete: readonly number[];
  /** The last training step written by this attempt. */
  lastStep: { round: number; step: number; asr: number | null } | null;
}

export interface RunProgress {
  phase: RunPhase;
  /** The round being played or measured (0: the initial adapters). */
  round: number | null;
  step: number | null;
  totalSteps: number | null;
  /** Share of the planned steps done, when known. */
  fraction: number | null;
  text: string;
}

/** What round-end measurements include, for the words. */
const MEASURED = 'Nash gap, best-response attack success, capability';

export function describeProgress(p: RunProgressInput): RunProgress {
  const total = p.stepsPerRound !== null && p.roundsPlanned !== null ? p.stepsPerRound * p.roundsPlanned : null;
  const lastComplete = p.roundsComplete.length ? Math.max(...p.roundsComplete) : -1;
  const of = (r: number) => (p.roundsPlanned !== null ? `round ${r}/${p.roundsPlanned}` : `round ${r}`);
  const stepText = (s: number) => (total !== null ? `step ${s}/${total}` : `step ${s}`);
  const fraction = (s: number | null) => (total && s !== null ? Math.min(1, s / total) : p.roundsPlanned ? Math.max(0, lastComplete) / p.roundsPlanned : null);
  const base = { round: null, step: null, totalSteps: total, fraction: null };

  if (!p.hasRunDir) return { ...base, phase: 'starting', text: 'starting absp…' };
  if (!p.started) return { ...base, phase: 'loading', text: 'loading the model and the judge…' };
  if (p.roundsPlanned !== null && lastComplete >= p.roundsPlanned) {
    return p.crossplay
      ? { ...base, round: lastComplete, step: p.lastStep?.step ?? null, fraction: 1, phase: 'crossplay', text: 'cross-play: every saved attacker against every saved defender…' }
      : { ...base, round: lastComplete, step: p.lastStep?.step ?? null, fraction: 1, phase: 'training', text: p.lastStep ? `${of(lastComplete)} · ${stepText(p.lastStep.step)} · finishing…` : `${of(lastComplete)} · finishing…` };
  }
  // The step of the round in progress; a step of a complete round (before a resume) is history.
  const current = p.lastStep && p.lastStep.round > lastComplete ? p.lastStep : null;
  if (current === null) {
    if (p.resumed) return { ...base, round: lastComplete + 1, fraction: fraction(null), phase: 'resuming', text: `resuming: loading round ${lastComplete}’s adapters, then ${of(lastComplete + 1)} from its first step…` };
    if (lastComplete < 0) {
      return p.measures
        ? { ...base, round: 0, fraction: 0, phase: 'measuring', text: `measuring the initial adapters (round 0: ${MEASURED}) before step 1…` }
        : { ...base, round: 0, fraction: 0, phase: 'creating', text: 'creating the adapters before step 1…' };
    }
    return { ...base, round: lastComplete + 1, fraction: fraction(null), phase: 'training', text: `${of(lastComplete + 1)} · first step…` };
  }
  const step = current.step;
  const round = current.round;
  if (p.stepsPerRound !== null && step >= round * p.stepsPerRound) {
    return {
      ...base,
      round,
      step,
      fraction: fraction(step),
      phase: 'measuring',
      text: p.measures ? `${of(round)} · measuring after ${stepText(step)} (${MEASURED})…` : `${of(round)} · saving after ${stepText(step)}…`,
    };
  }
  const parts = [of(round), stepText(step)];
  if (current.asr !== null) parts.push(`asr ${current.asr.toFixed(2)}`);
  return { ...base, round, step, fraction: fraction(step), phase: 'training', text: parts.join(' · ') };
}

/**
 * What Stop asks before it stops a run: what is kept, and what resume will do again. A round is saved
 * only when it is complete (its steps played and measured), so the steps of the round in progress are
 * redone from its first step.
 */
export function stopQuestion(name: string, p: RunProgress, stepsPerRound: number | null, alreadyStopping: boolean): { message: string; detail: string; confirm: string } {
  const round = p.round ?? null;
  const doneInRound = p.step !== null && stepsPerRound !== null && round !== null ? p.step - (round - 1) * stepsPerRound : null;
  const lost =
    round === null
      ? 'The round in progress is not saved until it completes; resume replays it from its first step.'
      : round === 0 || p.phase === 'creating' || (p.phase === 'measuring' && p.step === null)
        ? 'Nothing is trained yet: resume starts again from the initial adapters (round 0).'
        : `Round ${round} is not complete${doneInRound !== null ? `: its ${doneInRound} step${doneInRound === 1 ? '' : 's'} so far${stepsPerRound !== null ? ` (of ${stepsPerRound})` : ''} ${doneInRound === 1 ? 'is' : 'are'} not kept` : p.step === null ? ': it has not finished a step yet' : ''}. Resume replays round ${round} from its first step, from the adapters round ${round - 1} saved.`;
  if (alreadyStopping) {
    return {
      message: `End ${name} now?`,
      detail: `It is already stopping after its current step. Ending it now kills the trainer: the run reads as interrupted, its complete rounds are kept. ${lost}`,
      confirm: 'End Now',
    };
  }
  return {
    message: `Stop ${name}?`,
    detail: `The trainer finishes its current step, marks the run stopped and exits. ${lost}`,
    confirm: 'Stop After This Step',
  };
}
