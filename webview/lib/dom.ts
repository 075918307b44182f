/**
 * A tiny element builder. Text always goes in through textContent: transcripts are adversarial text
 * by design, and must never be parsed as HTML.
 */
type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  text?: string;
  title?: string;
  id?: string;
  attrs?: Record<string, string | number | boolean | null | undefined>;
  dataset?: Record<string, string>;
  on?: { [K in keyof HTMLElementEventMap]?: (event: HTMLElementEventMap[K]) => void };
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | null, ...children: Child[]): HTMLElementTagNameMap[K];
export function h(tag: string, props?: Props | null, ...children: Child[]): HTMLElement;
export function h(tag: string, props?: Props | null, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  if (props) {
    if (props.class) el.className = props.class;
    if (props.id) el.id = props.id;
    if (props.title) el.title = props.title;
    if (props.text !== undefined) el.textContent = props.text;
    for (const [k, v] of Object.entries(props.attrs ?? {})) {
      if (v === null || v === undefined || v === false) continue;
      el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const [k, v] of Object.entries(props.dataset ?? {})) el.dataset[k] = v;
    for (const [name, handler] of Object.entries(props.on ?? {})) el.addEventListener(name, handler as EventListener);
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's children. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/**
 * Whether a key event comes from a field the user types text into (so shortcuts must stay quiet).
 * Selects are not: their closed state does not take letters or arrows from the panel's shortcuts.
 */
export function isTypingTarget(event: Event): boolean {
  return event.composedPath().some((n) => {
    if (!(n instanceof HTMLElement)) return false;
    const tag = n.tagName;
    return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'VSCODE-TEXTFIELD' || tag === 'VSCODE-TEXTAREA' || n.isContentEditable;
  });
}

/** The select (closed or open) a key event comes from, if any. */
export function selectTarget(event: Event): (HTMLElement & { open?: boolean }) | null {
  for (const n of event.composedPath()) {
    if (n instanceof HTMLElement && (n.tagName === 'VSCODE-SINGLE-SELECT' || n.tagName === 'SELECT')) return n as HTMLElement & { open?: boolean };
  }
  return null;
}
