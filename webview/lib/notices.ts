/**
 * The panel's message area: errors and warnings stay visible (with the file and the problem) until
 * the condition clears or the user dismisses them. Keyed, so a repeated problem replaces its notice
 * instead of piling up.
 */
import { h } from './dom';

export type NoticeKind = 'error' | 'warning' | 'info';

export interface NoticeOptions {
  /** Same key, same notice: a new one replaces it. */
  key?: string;
  detail?: string;
  dismissible?: boolean;
}

export class Notices {
  readonly element: HTMLElement = h('section', { class: 'notices', attrs: { 'aria-live': 'polite', 'aria-label': 'Messages' } });
  private counter = 0;

  show(kind: NoticeKind, title: string, message: string, options: NoticeOptions = {}): HTMLElement {
    const key = options.key ?? `notice-${++this.counter}`;
    this.clear(key);
    const close = options.dismissible === false ? null : h('button', { class: 'notice-close', text: '×', title: 'Dismiss', attrs: { 'aria-label': 'Dismiss' }, on: { click: () => notice.remove() } });
    const notice = h(
      'div',
      { class: `notice ${kind}`, attrs: { role: kind === 'error' ? 'alert' : 'status' }, dataset: { key } },
      h('strong', { class: 'notice-title', text: title }),
      h('span', { class: 'notice-message', text: message }),
      options.detail ? h('details', null, h('summary', { text: 'Details' }), h('pre', { text: options.detail })) : null,
      close,
    );
    this.element.appendChild(notice);
    return notice;
  }

  error(title: string, message: string, options?: NoticeOptions): HTMLElement {
    return this.show('error', title, message, options);
  }

  warning(title: string, message: string, options?: NoticeOptions): HTMLElement {
    return this.show('warning', title, message, options);
  }

  clear(key: string): void {
    for (const el of this.element.querySelectorAll<HTMLElement>('.notice')) if (el.dataset.key === key) el.remove();
  }

  clearPrefix(prefix: string): void {
    for (const el of this.element.querySelectorAll<HTMLElement>('.notice')) if (el.dataset.key?.startsWith(prefix)) el.remove();
  }
}

/** A placeholder for an area with nothing to show yet, saying why: a panel is never blank. */
export function emptyState(message: string, kind: 'info' | 'error' | 'loading' = 'info'): HTMLElement {
  return h('div', { class: `empty-state ${kind}`, attrs: { role: kind === 'error' ? 'alert' : 'status' } }, message);
}
