/**
 * Hidden chain of thought: a role may think inside <think>…</think> before its answer; only the answer
 * is passed to the opponent and the judge. Output is well-formed when thinking was asked for and the
 * thought is closed, or when it was not asked for and no tag appears.
 */
export interface SplitOutput {
  thought: string | null;
  answer: string;
  wellFormed: boolean;
}

const OPEN = '<think>';
const CLOSE = '</think>';

export function splitOutput(raw: string, thinkingExpected: boolean): SplitOutput {
  const open = raw.indexOf(OPEN);
  const close = raw.indexOf(CLOSE);
  if (open === -1 && close === -1) return { thought: null, answer: raw.trim(), wellFormed: !thinkingExpected };
  if (open !== -1 && close > open) {
    const thought = raw.slice(open + OPEN.length, close).trim();
    const answer = raw.slice(close + CLOSE.length).trim();
    const extraTags = answer.includes(OPEN) || answer.includes(CLOSE) || raw.slice(0, open).trim() !== '';
    return { thought, answer, wellFormed: thinkingExpected && !extraTags && answer.length > 0 };
  }
  // An unclosed or stray tag: nothing trustworthy to pass on.
  return { thought: open !== -1 ? raw.slice(open + OPEN.length).trim() : null, answer: '', wellFormed: false };
}
