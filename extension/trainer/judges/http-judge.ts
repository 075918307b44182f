/**
 * A guard model served elsewhere behind an OpenAI-compatible completions endpoint. Requests time out
 * and are retried; an endpoint that stays down is an error that pauses the run, while an answer that
 * is not in the guard format gives unparsable labels (the item is dropped and counted).
 */
import { oneLine } from '../../util/plain-text';
import { Verdict } from '../verdict';
import { Judge, JudgeError, JudgeItem, verdictFromLabels } from './judge';
import { parseWildguard, wildguardPrompt } from './wildguard';

export interface HttpJudgeOptions {
  url: string;
  model: string;
  apiKey?: string;
  timeoutMs: number;
  retries: number;
  maxNewTokens?: number;
  concurrency?: number;
}

/** The most an answer may hold: a guard's three labels take a few hundred bytes. */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

class ResponseTooLarge extends Error {}

/** Reads a response body, stopping (and cancelling the transfer) past `limit` bytes. */
async function readBounded(res: Response, limit: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => {});
    throw new ResponseTooLarge(`declares a ${declared}-byte answer, more than the ${limit}-byte limit`);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw new ResponseTooLarge(`sent more than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class HttpJudge implements Judge {
  readonly name: string;

  constructor(private readonly o: HttpJudgeOptions) {
    this.name = `http:${o.url}`;
  }

  /** An endpoint may echo the request in its error text: the key never goes on into messages, logs or run.json. */
  private redact(text: string): string {
    return this.o.apiKey ? text.split(this.o.apiKey).join('[the API key]') : text;
  }

  private async complete(prompt: string): Promise<string> {
    const endpoint = `${this.o.url.replace(/\/+$/, '')}/completions`;
    let lastError = '';
    for (let attempt = 0; attempt <= this.o.retries; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), this.o.timeoutMs);
      try {
        const res = await fetch(endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(this.o.apiKey ? { authorization: `Bearer ${this.o.apiKey}` } : {}) },
          body: JSON.stringify({ model: this.o.model, prompt, max_tokens: this.o.maxNewTokens ?? 32, temperature: 0 }),
          signal: controller.signal,
          redirect: 'error',
        });
        const text = await readBounded(res, MAX_RESPONSE_BYTES);
        if (!res.ok) {
          lastError = `HTTP ${res.status}: ${oneLine(this.redact(text), 200)}`;
          if (res.status >= 400 && res.status < 500 && res.status !== 429) break;
          continue;
        }
        try {
          const body = JSON.parse(text) as { choices?: { text?: unknown }[] };
          const out = body.choices?.[0]?.text;
          return typeof out === 'string' ? out : '';
        } catch {
          return '';
        }
      } catch (e) {
        if (e instanceof ResponseTooLarge) {
          lastError = `the answer ${e.message}`;
          break;
        }
        const err = e as Error & { cause?: { code?: string; message?: string } };
        lastError = err.name === 'AbortError' ? `no answer within ${this.o.timeoutMs} ms` : (err.cause?.code ?? err.cause?.message ?? err.message);
      } finally {
        clearTimeout(timer);
      }
    }
    throw new JudgeError(`judge endpoint ${endpoint} failed: ${lastError}`);
  }

  async judge(items: readonly JudgeItem[]): Promise<Verdict[]> {
    const outputs = new Array<string>(items.length);
    const limit = this.o.concurrency ?? 8;
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        outputs[i] = await this.complete(wildguardPrompt(items[i].prompt, items[i].response));
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    return items.map((item, k) => verdictFromLabels(item, parseWildguard(outputs[k])));
  }

  async close(): Promise<void> {}
}
