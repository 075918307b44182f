/**
 * The extension's parts, wired together: settings, the runs catalog and its refresh loop, the jobs
 * (child processes), the panel worker, the panels, the views, the annotation comments. Commands
 * (commands.ts) act through this object.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { notify } from './notify';
import type { PanelKind } from '../../webview/protocol';
import { AnnotationComments, ExchangeDocuments } from './annotation-comments';
import { AnnotationIndex } from './annotation-index';
import { PanelWorkerClient } from '../panel-worker/client';
import { EXCHANGE_SCHEME } from './exchange-document';
import { resolveNodeCommand } from './executables';
import { JobManager } from './job-manager';
import { JobUi } from './job-ui';
import { approveRunJudges } from './judge-approval';
import type { Focus } from './panel-session';
import { PanelManager } from './panels';
import { RunCatalog, catalogContext, type ContextKey, type StatusChange } from './run-catalog';
import { SETTINGS_SECTION, resolveSettings, userSetting, type HostSettings } from './settings';
import { AnnotationsTreeProvider, RunsTreeProvider } from './views';

const EXTRA_RUNS_KEY = 'abspLab.extraRuns';
const LIVE_TICK_MS = 1000;
const IDLE_TICK_MS = 4000;

export class Lab implements vscode.Disposable {
  readonly output: vscode.OutputChannel;
  readonly catalog: RunCatalog;
  readonly jobs: JobManager;
  readonly annotations = new AnnotationIndex();
  readonly panelWorker: PanelWorkerClient;
  readonly panels: PanelManager;
  readonly runsTree: RunsTreeProvider;
  readonly annotationsTree: AnnotationsTreeProvider;
  readonly exchanges = new ExchangeDocuments();
  readonly comments: AnnotationComments;
  readonly jobUi: JobUi;
  private readonly disposables: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private disposed = false;
  /** Runs whose end a job already announced (so the catalog does not announce it twice). */
  private readonly announced = new Set<string>();

  constructor(readonly context: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel('ABSP Lab');
    this.catalog = new RunCatalog(() => ({ runsFolder: this.settings().runsFolder, extraRuns: this.extraRuns() }));
    this.jobs = new JobManager(() => ({
      node: resolveNodeCommand(this.settings().nodePath),
      cliEntry: this.extensionPath('bin', 'absp.js'),
      logDir: path.join(context.globalStorageUri.fsPath, 'logs'),
    }));
    this.panelWorker = new PanelWorkerClient({ workerScript: this.extensionPath('dist', 'panel-worker.js') });
    this.panels = new PanelManager(
      context.extensionUri,
      {
        runs: { summaries: () => this.catalog.summaries(), sweeps: () => this.catalog.sweeps(), dirOf: (key) => this.catalog.get(key)?.dir },
        panelWorker: this.panelWorker,
        annotate: async (runDir, round, exchange) => {
          await this.comments.open({ runDir, round, exchange });
        },
        log: (line) => this.log(line),
        approveJudges: (runDir) => approveRunJudges([runDir]),
      },
      () => this.settings().runsFolder,
      (line) => this.log(line),
    );
    this.runsTree = new RunsTreeProvider(this.catalog);
    this.annotationsTree = new AnnotationsTreeProvider(this.annotations, (dir) => this.catalog.get(dir)?.summary.label);
    this.comments = new AnnotationComments(this.exchanges, this.annotations, (line) => this.log(line));
    this.jobUi = new JobUi(this.jobs, this.output, {
      openDashboard: (dir) => this.showPanel('dashboard', { runs: [dir] }),
      openStepper: (dir) => this.showPanel('stepper', { runs: [dir] }),
      resume: (dir) => void vscode.commands.executeCommand('abspLab.resumeRun', { kind: 'run', dir }),
      showLog: () => this.output.show(true),
      openFile: (file) => void vscode.window.showTextDocument(vscode.Uri.file(file)),
    });

    const runsView = vscode.window.createTreeView('abspLab.runs', { treeDataProvider: this.runsTree, showCollapseAll: true });
    const annotationsView = vscode.window.createTreeView('abspLab.annotations', { treeDataProvider: this.annotationsTree });
    this.disposables.push(
      this.output,
      runsView,
      annotationsView,
      this.panels,
      this.runsTree,
      this.annotationsTree,
      this.comments,
      this.jobUi,
      vscode.workspace.registerFileSystemProvider(EXCHANGE_SCHEME, this.exchanges, {
        isCaseSensitive: true,
        isReadonly: new vscode.MarkdownString('An exchange of a run is read-only: add a comment to annotate it.'),
      }),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(SETTINGS_SECTION)) {
          this.log(`settings changed: runs folder ${this.settings().runsFolder}`);
          void this.tick();
        }
      }),
      this.catalog.onDidChange((change) => {
        this.runsTree.refresh();
        void this.panels.pushRuns();
        for (const s of change.statusChanges) this.statusChanged(s);
        this.updateContext();
      }),
      this.annotations.onDidChange(() => {
        this.annotationsTree.refresh();
        this.updateContext();
      }),
      this.jobs.onProgress(({ job, progress }) => job.runDir && this.runsTree.setProgress(job.runDir, progress.text)),
      this.jobs.onStarted(() => {
        this.updateContext();
        this.schedule(0);
      }),
      this.jobs.onFinished(({ job, outcome }) => {
        if (job.runDir) this.runsTree.setProgress(job.runDir, null);
        if (outcome.runDir) this.announced.add(outcome.runDir);
        this.updateContext();
        this.schedule(0);
      }),
    );
    const s = this.settings();
    this.log(`ABSP Lab ${context.extension.packageJSON.version}: runs folder ${s.runsFolder}`);
    this.schedule(0);
  }

  private readonly contextKeys = new Map<ContextKey, boolean>();

  /** Sets the context keys of package.json's `when` clauses (only those that changed). */
  private updateContext(): void {
    const running = this.jobs.active.some((j) => j.spec.kind === 'run' || j.spec.kind === 'resume');
    const keys = catalogContext(this.catalog.entries(), this.annotations.runs().filter((r) => r.annotations.length > 0).length, running);
    for (const [key, value] of Object.entries(keys) as [ContextKey, boolean][]) {
      if (this.contextKeys.get(key) === value) continue;
      this.contextKeys.set(key, value);
      void vscode.commands.executeCommand('setContext', key, value);
    }
  }

  settings(): HostSettings {
    const c = vscode.workspace.getConfiguration(SETTINGS_SECTION);
    const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    return resolveSettings(
      // Executables come from the user's (or the machine's) settings only, never a workspace's.
      { runsFolder: c.get('runsFolder'), defaultEngine: c.get('defaultEngine'), nodePath: userSetting(c, 'nodePath'), pythonPath: userSetting(c, 'pythonPath'), configGlob: c.get('configGlob') },
      root,
      this.context.globalStorageUri.fsPath,
    );
  }

  extensionPath(...parts: string[]): string {
    return path.join(this.context.extensionUri.fsPath, ...parts);
  }

  log(line: string): void {
    this.output.appendLine(line);
  }

  extraRuns(): string[] {
    return this.context.workspaceState.get<string[]>(EXTRA_RUNS_KEY, []);
  }

  async addExtraRun(dir: string): Promise<void> {
    const list = [...new Set([...this.extraRuns(), path.resolve(dir)])];
    await this.context.workspaceState.update(EXTRA_RUNS_KEY, list);
    await this.tick();
  }

  showPanel(kind: PanelKind, focus: Focus = null): void {
    this.panels.show(kind, focus);
    this.schedule(0);
  }

  /** One refresh: the runs list, the annotations, and the live records of every watched run. */
  async tick(): Promise<void> {
    if (this.ticking || this.disposed) return;
    this.ticking = true;
    try {
      this.catalog.refresh();
      this.annotations.refresh(this.catalog.entries().filter((e) => e.info).map((e) => e.dir));
      await this.panels.tick();
    } catch (e) {
      this.log(`refresh failed: ${(e as Error).stack ?? e}`);
    } finally {
      this.ticking = false;
    }
  }

  private schedule(delay: number): void {
    if (this.disposed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      this.timer = null;
      await this.tick();
      const live = this.catalog.anyRunning || this.jobs.active.length > 0 || this.panels.isOpen('stepper') || this.panels.isOpen('dashboard');
      this.schedule(live ? LIVE_TICK_MS : IDLE_TICK_MS);
    }, delay);
  }

  /** A run this window did not start changed status (a run started before a reload finished, say). */
  private statusChanged(s: StatusChange): void {
    if (s.from !== 'running' || s.to === 'running' || !s.info) return;
    if (this.announced.delete(s.dir) || this.jobs.jobFor(s.dir)) return;
    const name = path.basename(s.dir);
    const reason = s.info.reason ? `: ${s.info.reason}` : '';
    const text = s.to === 'completed' ? `Run ${name} completed.` : s.to === 'interrupted' ? `Run ${name} was interrupted (its process is gone); resume continues it.` : `Run ${name} ${s.to}${reason}.`;
    const show = s.to === 'completed' || s.to === 'stopped' ? notify.info : notify.warn;
    void show(`ABSP: ${text}`, 'Open Dashboard').then((b) => b && this.showPanel('dashboard', { runs: [s.dir] }));
  }

  /** On shutdown: running jobs are asked to stop after their current step (see cli-job.ts). */
  dispose(): void {
    this.disposed = true;
    if (this.timer) clearTimeout(this.timer);
    const stopping = this.jobs.stopAll();
    if (stopping) this.log(`asked ${stopping} running job(s) to stop after the current step`);
    void this.panelWorker.dispose();
    this.catalog.dispose();
    this.annotations.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
