/**
 * The panel's end of the host connection: acquireVsCodeApi() wrapped so that every message in is
 * validated against the protocol, every message out is typed, and saved state is checked before use.
 * Anything malformed becomes a call to the panel's error handler (which shows it), never an exception
 * that leaves the panel half-drawn.
 */
import type { z } from 'zod';
import { PROTOCOL_VERSION, parseHostMessage, type HostMessage, type PanelKind, type WebviewMessage } from '../protocol';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): unknown;
}

declare global {
  // Provided by VS Code inside a webview (and by the test harness); callable once per page.
  // eslint-disable-next-line no-var
  var acquireVsCodeApi: (() => VsCodeApi) | undefined;
}

export interface HostConnection<S> {
  post(message: WebviewMessage): void;
  /** The state saved before the panel was hidden or reloaded, if it still fits the panel's schema. */
  savedState(): S | undefined;
  saveState(state: S): void;
}

export interface ConnectOptions<S> {
  panel: PanelKind;
  stateSchema: z.ZodType<S>;
  onMessage: (message: HostMessage) => void;
  /** A message that failed validation, or a handler that threw: show it, the panel carries on. */
  onError: (title: string, message: string) => void;
}

export function connectHost<S>(options: ConnectOptions<S>): HostConnection<S> {
  const api = typeof acquireVsCodeApi === 'function' ? acquireVsCodeApi() : null;
  if (!api) options.onError('Not running inside VS Code', 'This page is an ABSP Lab panel and needs the VS Code webview API (acquireVsCodeApi) to talk to the extension.');
  const post = (message: WebviewMessage) => api?.postMessage(message);

  window.addEventListener('message', (event: MessageEvent) => {
    const parsed = parseHostMessage(event.data);
    if (!parsed.ok) {
      options.onError('Ignored a malformed message from the extension', parsed.error);
      post({ type: 'webview-error', message: parsed.error });
      return;
    }
    if (parsed.message.type === 'init' && parsed.message.protocol !== PROTOCOL_VERSION) {
      const message = `The extension speaks panel protocol ${parsed.message.protocol}, this panel ${PROTOCOL_VERSION}. Close and reopen the panel.`;
      options.onError('Panel and extension versions differ', message);
      post({ type: 'webview-error', message });
      return;
    }
    try {
      options.onMessage(parsed.message);
    } catch (e) {
      reportError(options, post, `Could not show a "${parsed.message.type}" message`, e);
    }
  });
  window.addEventListener('error', (event) => reportError(options, post, 'Panel error', event.error ?? event.message));
  window.addEventListener('unhandledrejection', (event) => reportError(options, post, 'Panel error', event.reason));

  return {
    post,
    savedState() {
      const parsed = options.stateSchema.safeParse(api?.getState());
      return parsed.success ? parsed.data : undefined;
    },
    saveState(state) {
      api?.setState(state);
    },
  };
}

function reportError<S>(options: ConnectOptions<S>, post: (m: WebviewMessage) => void, title: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  options.onError(title, message);
  post({ type: 'webview-error', message: `${title}: ${message}`, detail: error instanceof Error ? error.stack : undefined });
}

/** Sends `ready` once the panel has set up its handlers; the host answers with `init`. */
export function announceReady<S>(host: HostConnection<S>, panel: PanelKind): void {
  host.post({ type: 'ready', panel, protocol: PROTOCOL_VERSION });
}

let requestCounter = 0;
export function newRequestId(prefix: string): string {
  requestCounter += 1;
  return `${prefix}-${Date.now().toString(36)}-${requestCounter}`;
}
