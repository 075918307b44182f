/**
 * Notifications. Their text often carries what someone else wrote — a run's recorded reason, a folder
 * name, an endpoint's error body, an error message quoting a file — and VS Code renders
 * `[label](command:…)` in notification text as a link that runs a command. Every notification of
 * the extension goes through here, flattened and with links broken (util/plain-text.ts).
 */
import * as vscode from 'vscode';
import { notificationText } from '../util/plain-text';

export const notify = {
  info: <T extends string>(message: string, ...items: T[]): Thenable<T | undefined> => vscode.window.showInformationMessage(notificationText(message), ...items),
  warn: <T extends string>(message: string, ...items: T[]): Thenable<T | undefined> => vscode.window.showWarningMessage(notificationText(message), ...items),
  error: <T extends string>(message: string, ...items: T[]): Thenable<T | undefined> => vscode.window.showErrorMessage(notificationText(message), ...items),
};
