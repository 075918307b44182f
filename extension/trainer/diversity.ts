/**
 * Self-BLEU-4 of a set of token sequences: the mean BLEU-4 of each sequence against all the others
 * as references (clipped n-gram precisions, brevity penalty with the closest reference length, and
 * add-one smoothing for n > 1 so short texts do not collapse to zero). Higher means less diverse.
 */
function ngrams(tokens: readonly (number | string)[], n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join('\u0001');
    m.set(key, (m.get(key) ?? 0) + 1);
  }
  return m;
}

export function bleu4(candidate: readonly (number | string)[], references: readonly (readonly (number | string)[])[]): number {
  if (candidate.length === 0 || references.length === 0) return 0;
  let logSum = 0;
  for (let n = 1; n <= 4; n++) {
    const cand = ngrams(candidate, n);
    const maxRef = new Map<string, number>();
    for (const ref of references) for (const [k, c] of ngrams(ref, n)) maxRef.set(k, Math.max(maxRef.get(k) ?? 0, c));
    let clipped = 0;
    let total = 0;
    for (const [k, c] of cand) {
      clipped += Math.min(c, maxRef.get(k) ?? 0);
      total += c;
    }
    const p = n === 1 ? (total ? clipped / total : 0) : (clipped + 1) / (total + 1);
    if (p === 0) return 0;
    logSum += Math.log(p) / 4;
  }
  const c = candidate.length;
  const closest = references.map((r) => r.length).reduce((best, len) => (Math.abs(len - c) < Math.abs(best - c) || (Math.abs(len - c) === Math.abs(best - c) && len < best) ? len : best));
  const bp = c >= closest ? 1 : Math.exp(1 - closest / c);
  return bp * Math.exp(logSum);
}

export function selfBleu(texts: readonly (readonly (number | string)[])[]): number {
  if (texts.length < 2) return 0;
  let sum = 0;
  texts.forEach((t, i) => (sum += bleu4(t, texts.filter((_, j) => j !== i))));
  return sum / texts.length;
}

/**
 * Novelty of each text against the others it is played with (Curiosity-driven red teaming's
 * SelfBLEU novelty, arXiv 2402.19464): 1 − BLEU-4 of the text against the texts of the *other*
 * groups, so samples of one seed do not count against each other and a group's own copies of a
 * rewrite are not novel by construction. Texts with no other group to compare with score 0.
 */
export function groupNovelty(texts: readonly (readonly (number | string)[])[], groups: readonly number[]): number[] {
  return texts.map((t, i) => {
    const others = texts.filter((_, j) => groups[j] !== groups[i]);
    return others.length === 0 ? 0 : 1 - bleu4(t, others);
  });
}
