/** Parsers for command-line option values, each failing with a message that names the option. */
import { InvalidArgumentError } from 'commander';

export function intOption(name: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
}

export function floatOption(name: string, min = -Infinity, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}], got ${JSON.stringify(value)}`);
    return n;
  };
}

export function listOption(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

export function idsOption(value: string): number[] {
  return value.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`--ids must be comma-separated integers, got ${JSON.stringify(s)}`);
    return n;
  });
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export const ALLOW_JUDGE_HELP =
  "approve a judge endpoint named by a run directory's config.json, with the key variable it may send (repeatable): VAR=URL, or URL for no key";
