/**
 * ABSP Lab's extension host entry point. The host manages the training process and reads run
 * directories; training runs in an `absp` child process and the engine's panel work in a worker
 * thread, never on this thread. See docs/extension.md.
 */
import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { Lab } from './lab';

let lab: Lab | undefined;

export function activate(context: vscode.ExtensionContext): void {
  lab = new Lab(context);
  context.subscriptions.push(lab, ...registerCommands(lab));
}

/** Running trainings are asked to stop after their current step (resumable); see cli-job.ts. */
export function deactivate(): void {
  lab?.dispose();
  lab = undefined;
}
