/**
 * The VS Code-styled web components the panels use (@vscode-elements/elements, the maintained
 * successor of the archived webview-ui-toolkit). Importing a component registers its custom element.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import '@vscode-elements/elements/dist/vscode-progress-ring/index.js';
import { h } from './dom';

export interface SelectOption {
  value: string;
  label: string;
  disabled?: boolean;
}

/** A vscode-single-select with its options; `value` is set after the options exist, as it must be. */
export function singleSelect(name: string, options: readonly SelectOption[], value: string, onChange: (value: string) => void): HTMLElement & { value: string } {
  const select = h('vscode-single-select', { attrs: { 'aria-label': name }, dataset: { name } }) as HTMLElement & { value: string; position: 'above' | 'below' };
  setSelectOptions(select, options, value);
  select.addEventListener('change', () => onChange(select.value));
  // Its list opens below it, where a select at the bottom of the panel has no room: open above then.
  const place = () => {
    const r = select.getBoundingClientRect();
    const needed = Math.min(260, select.children.length * 24 + 12);
    const below = window.innerHeight - r.bottom;
    select.position = below < needed && r.top > below ? 'above' : 'below';
  };
  select.addEventListener('pointerdown', place, { capture: true });
  select.addEventListener('keydown', place, { capture: true });
  return select;
}

export function setSelectOptions(select: HTMLElement & { value: string }, options: readonly SelectOption[], value: string): void {
  select.replaceChildren(
    ...options.map((o) => h('vscode-option', { text: o.label, attrs: { value: o.value, disabled: o.disabled ?? false, selected: o.value === value } })),
  );
  select.value = value;
}

export function button(label: string, onClick: () => void, options: { secondary?: boolean; name?: string } = {}): HTMLElement & { disabled: boolean } {
  const b = h('vscode-button', { text: label, attrs: { secondary: options.secondary ?? false }, dataset: { name: options.name ?? label } }) as HTMLElement & { disabled: boolean };
  b.addEventListener('click', () => {
    if (!b.disabled) onClick();
  });
  return b;
}
