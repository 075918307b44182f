/**
 * How running jobs show in the editor: their output in the "ABSP Lab" output channel, their progress in
 * the status bar (click: the run's dashboard; the tooltip offers Stop, which asks first, and the log)
 * and as a progress line on the Runs view, whose rows say the step — never a notification that stays
 * on screen for the whole run, or whose button stops it — and a notification when they end, with
 * buttons to open what they produced.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { notify } from './notify';
import { runLayout } from '../rundir';
import type { CliJob } from './cli-job';
import type { JobOutcome } from './job-outcome';
import type { JobManager } from './job-manager';

export interface OutcomeActions {
  openDashboard(runDir: string): void;
  openStepper(runDir: string): void;
  resume(runDir: string): void;
  showLog(): void;
  openFile(file: string): void;
}

export class JobUi implements vscode.Disposable {
  private readonly status: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly progressLines = new Map<CliJob, string>();

  constructor(
    private readonly jobs: JobManager,
    private readonly output: vscode.OutputChannel,
    private readonly actions: OutcomeActions,
  ) {
    this.status = vscode.window.createStatusBarItem('abspLab.jobs', vscode.StatusBarAlignment.Left, 10);
    this.status.name = 'ABSP Lab jobs';
    this.disposables.push(
      this.status,
      jobs.onStarted((job) => this.started(job)),
      jobs.onOutput(({ job, line }) => this.output.appendLine(`[${job.spec.kind}] ${line}`)),
      jobs.onProgress(({ job, progress }) => {
        this.progressLines.set(job, progress.text);
        this.render();
      }),
      jobs.onFinished(({ job, outcome }) => this.finished(job, outcome)),
    );
    this.render();
  }

  private started(job: CliJob): void {
    this.output.appendLine(`${new Date().toISOString()} started ${job.spec.title} (pid ${job.pid ?? '?'}; node ${job.node}; log ${job.logFile})`);
    this.progressLines.set(job, job.progress.text);
    this.render();
    // A busy line on the Runs view while the job lasts: visible where the runs are, and not cancellable
    // (stopping a run is a decision, made with Stop).
    void vscode.window.withProgress({ location: { viewId: 'abspLab.runs' } }, () => job.done.then(() => undefined));
  }

  private finished(job: CliJob, outcome: JobOutcome): void {
    this.progressLines.delete(job);
    this.render();
    this.output.appendLine(`${new Date().toISOString()} ${job.spec.title}: ${outcome.status} — ${outcome.message}`);
    void this.notify(job, outcome);
  }

  /** A finished job's notification, with what to do next. */
  async notify(job: CliJob | null, outcome: JobOutcome): Promise<void> {
    const dir = outcome.runDir;
    const buttons: { title: string; run: () => void }[] = [];
    const kind = job?.spec.kind ?? 'run';
    if (dir) buttons.push({ title: 'Open Dashboard', run: () => this.actions.openDashboard(dir) });
    if (dir && outcome.status === 'completed' && (kind === 'run' || kind === 'resume')) buttons.push({ title: 'Open Stepper', run: () => this.actions.openStepper(dir) });
    if (dir && (outcome.status === 'stopped' || outcome.status === 'paused' || outcome.status === 'crashed') && (kind === 'run' || kind === 'resume')) buttons.push({ title: 'Resume', run: () => this.actions.resume(dir) });
    if (dir && kind === 'eval' && outcome.status === 'completed') {
      const file = latestEvalFile(dir);
      if (file) buttons.push({ title: 'Open Result', run: () => this.actions.openFile(file) });
    }
    if (outcome.status !== 'completed') buttons.push({ title: 'Show Log', run: () => this.actions.showLog() });
    const show = outcome.status === 'completed' || outcome.status === 'stopped' ? notify.info : notify.error;
    const picked = await show(`ABSP: ${outcome.message}`, ...buttons.map((b) => b.title));
    buttons.find((b) => b.title === picked)?.run();
  }

  private render(): void {
    const active = this.jobs.active;
    if (active.length === 0) {
      this.status.hide();
      return;
    }
    const job = active[active.length - 1];
    const line = this.progressLines.get(job) ?? '';
    const more = active.length > 1 ? ` (+${active.length - 1})` : '';
    this.status.text = `$(sync~spin) ABSP ${job.spec.kind}: ${line}${more}`;
    const link = (title: string, command: string, dir?: string | null) => `[${title}](command:${command}${dir ? `?${encodeURIComponent(JSON.stringify([{ kind: 'run', dir }]))}` : ''})`;
    const tooltip = new vscode.MarkdownString(
      active
        .map((j) => {
          const actions = [j.runDir ? link('Open Dashboard', 'abspLab.openDashboard', j.runDir) : null, (j.spec.kind === 'run' || j.spec.kind === 'resume') && j.runDir ? link('Stop…', 'abspLab.stopRun', j.runDir) : null, link('Show Log', 'abspLab.showLog')].filter(Boolean);
          return `**${j.spec.title}** — ${this.progressLines.get(j) ?? ''}\n\n${actions.join(' · ')}`;
        })
        .join('\n\n---\n\n'),
    );
    tooltip.isTrusted = { enabledCommands: ['abspLab.openDashboard', 'abspLab.stopRun', 'abspLab.showLog'] };
    this.status.tooltip = tooltip;
    this.status.command = job.runDir ? { command: 'abspLab.openDashboard', title: 'Open Dashboard', arguments: [{ kind: 'run', dir: job.runDir }] } : 'abspLab.showLog';
    this.status.show();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}

/** The result `absp eval` wrote last (it names the file after the data and the round). */
export function latestEvalFile(runDir: string): string | null {
  try {
    const dir = runLayout(runDir).evalDir;
    const files = fs.readdirSync(dir).filter((n) => n.endsWith('.json')).map((n) => ({ n, t: fs.statSync(path.join(dir, n)).mtimeMs }));
    files.sort((a, b) => b.t - a.t);
    return files.length ? path.join(dir, files[0].n) : null;
  } catch {
    return null;
  }
}
