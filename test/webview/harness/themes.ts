/**
 * The four default VS Code themes as a webview receives them (themes.json: the variables code-server
 * 4.139.1 / VS Code 1.139.1 puts on a webview's <html>, read from a Markdown preview), and the switch
 * VS Code makes when the user changes theme with a panel open: the variables replaced on <html>
 * (through the CSSOM, which the panels' Content-Security-Policy allows), the kind's classes and
 * data-vscode-theme-kind on <body>.
 */
import themes from './themes.json';

export type ThemeName = 'dark' | 'light' | 'high-contrast' | 'high-contrast-light';

export interface ThemeVariables {
  kind: string;
  bodyClasses: string[];
  vars: Record<string, string>;
}

export const THEMES = themes.themes as Record<ThemeName, ThemeVariables>;

/** Runs in the page (passed to page.evaluate): no references outside its argument. */
export function applyThemeInPage(theme: ThemeVariables): void {
  // The harness's initial dark stylesheet would fill in variables this theme does not define.
  for (const link of document.querySelectorAll<HTMLLinkElement>('link[rel=stylesheet]')) if (link.href.includes('vscode-dark.css')) link.disabled = true;
  const root = document.documentElement;
  for (let i = root.style.length - 1; i >= 0; i--) {
    const name = root.style[i];
    if (name.startsWith('--vscode-')) root.style.removeProperty(name);
  }
  for (const [name, value] of Object.entries(theme.vars)) root.style.setProperty(name, value);
  const body = document.body;
  for (const c of [...body.classList]) if (c.startsWith('vscode-')) body.classList.remove(c);
  for (const c of theme.bodyClasses) body.classList.add(c);
  body.dataset.vscodeThemeKind = theme.kind;
}
