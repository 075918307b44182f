/**
 * A chat template (`tokenizer_config.json`'s `chat_template`, Jinja) rendered with bounds. The
 * template comes with the model — from a hub, a colleague, a run's copy — and Jinja can loop over
 * `range(10**9)`, nest loops, or grow a string by doubling: @huggingface/jinja's interpreter runs
 * here, counting every node it evaluates, with a deadline, a cap on `range()` and on every string and
 * list it builds. A template that passes a bound is an error naming the file and the bound, in
 * milliseconds, never a hang or gigabytes.
 */
import { Environment, Interpreter, Template } from '@huggingface/jinja';

export interface RenderLimits {
  /** Nodes the interpreter may evaluate in one render. */
  steps: number;
  /** Wall-clock budget of one render. */
  ms: number;
  /** The longest string (and output) a render may build, in characters. */
  chars: number;
  /** The longest list (and `range()`) a render may build. */
  items: number;
}

export const DEFAULT_RENDER_LIMITS: RenderLimits = { steps: 2_000_000, ms: 2_000, chars: 4 * 1024 * 1024, items: 100_000 };
/** Templates are a few kilobytes; a larger source is not a chat template. */
export const MAX_TEMPLATE_CHARS = 256 * 1024;

export class TemplateLimitError extends Error {}

type Node = Parameters<Interpreter['evaluate']>[0];
type Env = Parameters<Interpreter['evaluate']>[1];
type Value = ReturnType<Interpreter['evaluate']>;

class BoundedInterpreter extends Interpreter {
  private steps = 0;
  private readonly deadline: number;

  constructor(
    env: Environment,
    private readonly limits: RenderLimits,
  ) {
    super(env);
    this.deadline = Date.now() + limits.ms;
    // Every loop iteration runs its body through evaluateBlock, even an empty body that evaluates no
    // node: count those too (the method is private in the library's types, so it is wrapped here).
    const self = this as unknown as { evaluateBlock: (...args: unknown[]) => unknown };
    const block = self.evaluateBlock.bind(this);
    self.evaluateBlock = (...args: unknown[]) => {
      this.step();
      return block(...args);
    };
  }

  private step(): void {
    if (++this.steps > this.limits.steps) throw new TemplateLimitError(`rendering took more than ${this.limits.steps} steps`);
    if ((this.steps & 63) === 0 && Date.now() > this.deadline) throw new TemplateLimitError(`rendering took longer than ${this.limits.ms} ms`);
  }

  override evaluate(statement: Node, environment: Env): Value {
    this.step();
    const value = super.evaluate(statement, environment);
    const v = (value as { value?: unknown }).value;
    if (typeof v === 'string' && v.length > this.limits.chars) throw new TemplateLimitError(`rendering built a string longer than ${this.limits.chars} characters`);
    if (Array.isArray(v) && v.length > this.limits.items) throw new TemplateLimitError(`rendering built a list longer than ${this.limits.items} items`);
    return value;
  }
}

/** Python's range(), refusing to build more than `max` numbers. */
function boundedRange(max: number) {
  return (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) {
      stop = start;
      start = 0;
    }
    if (![start, stop, step].every(Number.isFinite)) throw new TemplateLimitError('range() needs finite numbers');
    if (step === 0) throw new Error('range() step must not be zero');
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (n > max) throw new TemplateLimitError(`range() of ${n} numbers is more than ${max}`);
    return Array.from({ length: n }, (_, i) => start + i * step);
  };
}

function strftimeNow(format: string): string {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
  return String(format).replace(/%[YmdbBHM%]/g, (t) => {
    switch (t) {
      case '%Y':
        return String(d.getFullYear());
      case '%m':
        return pad(d.getMonth() + 1);
      case '%d':
        return pad(d.getDate());
      case '%b':
        return months[d.getMonth()].slice(0, 3);
      case '%B':
        return months[d.getMonth()];
      case '%H':
        return pad(d.getHours());
      case '%M':
        return pad(d.getMinutes());
      default:
        return '%';
    }
  });
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(source: string) {
    if (source.length > MAX_TEMPLATE_CHARS) throw new TemplateLimitError(`the template is ${source.length} characters, more than ${MAX_TEMPLATE_CHARS}`);
    this.template = new Template(source);
  }

  /** Renders with the same globals as @huggingface/jinja's Template.render, inside the limits. */
  render(items: Record<string, unknown>, limits: RenderLimits = DEFAULT_RENDER_LIMITS): string {
    const env = new Environment();
    const globals: Record<string, unknown> = {
      false: false,
      true: true,
      none: null,
      False: false,
      True: true,
      None: null,
      raise_exception: (message: unknown) => {
        throw new Error(String(message));
      },
      range: boundedRange(limits.items),
      strftime_now: strftimeNow,
    };
    for (const [k, v] of Object.entries({ ...globals, ...items })) env.set(k, v as never);
    let out: Value;
    try {
      out = new BoundedInterpreter(env, limits).run(this.template.parsed);
    } catch (e) {
      if (e instanceof RangeError) throw new TemplateLimitError(`rendering recursed too deeply (${e.message})`);
      throw e;
    }
    const text = (out as { value?: unknown }).value;
    return typeof text === 'string' ? text : String(text);
  }
}
