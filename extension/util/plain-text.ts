/**
 * Text from someone else (a run's recorded reason, an endpoint's error body, a folder name) shown to
 * the user: on one line, without control or direction-overriding characters, bounded in length, and
 * in a notification unable to form a link (VS Code renders `[label](command:…)` in notification text
 * as a clickable command).
 */

/** C0/C1 controls, and the bidirectional overrides that make text read differently from what it is. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** One line of at most `max` characters (longer text ends in "…"). */
export function oneLine(text: string, max = 300): string {
  const flat = String(text).replace(CONTROL, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/**
 * Text safe for a notification: `](` cannot close a link label (a zero-width space goes between),
 * so `[x](command:…)` stays text; newlines and controls are flattened, and it is bounded.
 */
export function notificationText(text: string, max = 1000): string {
  return oneLine(oneLine(text, Infinity).replace(/\]\s*\(/g, ']\u200b('), max);
}
