/**
 * How the sandbox splits text into words. It uses the same normalizer and pre-tokenizer objects that the
 * generated `tokenizer.json` declares, so the judge, the vocabulary builder and the model all see one
 * segmentation of a text: there is no second, hand-written notion of a "word".
 */
import { LowercaseNormalizer, WhitespacePreTokenizer } from '@huggingface/tokenizers';

/** Declared in tokenizer.json; `words()` below must stay equivalent (a test checks it). */
export const NORMALIZER_CONFIG = { type: 'Lowercase' } as const;
export const PRE_TOKENIZER_CONFIG = { type: 'Whitespace' } as const;

const normalizer = new LowercaseNormalizer(NORMALIZER_CONFIG);
const preTokenizer = new WhitespacePreTokenizer();

/** The words of a text exactly as the sandbox tokenizer segments it (lowercased; punctuation runs split off). */
export function words(text: string): string[] {
  if (!text) return [];
  return preTokenizer.pre_tokenize(normalizer.normalize(text));
}

/** A comparison key for a word sequence; two texts with the same key are the same sentence to the sandbox. */
export function wordKey(tokens: readonly string[]): string {
  return tokens.join(' ');
}

/** Index of the first occurrence of `needle` inside `haystack` at or after `from`, or -1. */
export function indexOfSequence(haystack: readonly string[], needle: readonly string[], from = 0): number {
  if (needle.length === 0) return -1;
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
