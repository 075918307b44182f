/**
 * The commands of the ABSP category. From a view they receive the clicked node (which carries its run
 * directory); from the command palette they ask with quick picks. Every failure ends in a notification
 * that says what to do, never in an unhandled rejection.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { notify } from './notify';
import { exportAnnotatedSeeds, readRunInfo, runLayout, type AnnotationLabel } from '../rundir';
import { ConfigError, defaultRunConfig, loadRunConfig, type RunConfig } from '../trainer/run-config';
import { LABEL_TITLES } from './annotation-comments';
import { MissingExecutableError, MissingTorchEnvironmentError, resolveTorchPython } from './executables';
import { defaultVenvDir, findEnginePythonAsync } from '../engine/torch/python-env';
import { setupTorchEnv } from '../engine/torch/setup-env';
import { cliArgs } from './job-manager';
import { approveRunJudges } from './judge-approval';
import { requireTrust } from './settings';
import type { Lab } from './lab';
import { builtinExperimentEntry, freeConfigName, seedsFolder, starterConfigText, type PastRun } from './starter-config';
import { readRunProgress } from './run-catalog';
import { stopQuestion, type RunProgress } from './run-progress';
import type { AnnotationNode, TreeNode } from './tree-nodes';

/** Anything a command may be invoked with: a view node, an explorer/editor Uri, or nothing. */
type Target = Partial<TreeNode> | vscode.Uri | undefined;

const BUILTIN = 'builtin';
const NEW_CONFIG = 'new';

export function registerCommands(lab: Lab): vscode.Disposable[] {
  const c = new Commands(lab);
  const register = (id: string, fn: (...args: never[]) => unknown) =>
    vscode.commands.registerCommand(id, async (...args: unknown[]) => {
      try {
        return await (fn as (...a: unknown[]) => unknown).apply(c, args);
      } catch (e) {
        lab.log(`${id} failed: ${(e as Error).stack ?? e}`);
        const settings = e instanceof MissingExecutableError ? ['Open Settings'] : [];
        const setup = e instanceof MissingTorchEnvironmentError ? ['Set Up PyTorch Engine'] : [];
        const picked = await notify.error(`ABSP: ${(e as Error).message}`, ...setup, ...settings, 'Show Log');
        if (picked === 'Set Up PyTorch Engine') void vscode.commands.executeCommand('abspLab.setupTorch');
        if (picked === 'Open Settings' && e instanceof MissingExecutableError) void vscode.commands.executeCommand('workbench.action.openSettings', e.setting);
        if (picked === 'Show Log') lab.output.show(true);
        return undefined;
      }
    });
  const labelCommand = (label: AnnotationLabel) => (reply: vscode.CommentReply) => lab.comments.create(reply, label);
  return [
    register('abspLab.startRun', c.startRun),
    register('abspLab.newConfig', c.newConfig),
    register('abspLab.setupTorch', c.setupTorch),
    register('abspLab.stopRun', c.stopRun),
    register('abspLab.resumeRun', c.resumeRun),
    register('abspLab.openDashboard', c.openDashboard),
    register('abspLab.openStepper', c.openStepper),
    register('abspLab.compareAdapters', c.compareAdapters),
    register('abspLab.runCrossplay', c.runCrossplay),
    register('abspLab.evaluate', c.evaluate),
    register('abspLab.exportAnnotatedSeeds', c.exportSeeds),
    register('abspLab.openRunDirectory', c.openRunDirectory),
    register('abspLab.revealRun', c.reveal),
    register('abspLab.refreshRuns', () => lab.tick()),
    register('abspLab.showLog', () => lab.output.show(true)),
    register('abspLab.openExchange', c.openExchange),
    register('abspLab.openAnnotation', (node: AnnotationNode) => lab.comments.open({ runDir: node.dir, round: node.annotation.round, exchange: node.annotation.exchange }, node.annotation)),
    register('abspLab.deleteAnnotation', (target: unknown) => lab.comments.delete(target)),
    register('abspLab.annotation.jailbreak', labelCommand('jailbreak')),
    register('abspLab.annotation.overRefusal', labelCommand('over-refusal')),
    register('abspLab.annotation.judgeError', labelCommand('judge-error')),
    register('abspLab.annotation.other', labelCommand('other')),
    register('abspLab.annotation.edit', (comment: unknown) => lab.comments.startEdit(comment)),
    register('abspLab.annotation.save', (comment: unknown) => lab.comments.saveEdit(comment)),
    register('abspLab.annotation.cancelEdit', (comment: unknown) => lab.comments.cancelEdit(comment)),
    register('abspLab.annotation.changeLabel', (comment: unknown) => lab.comments.changeLabel(comment)),
  ];
}

class Commands {
  constructor(private readonly lab: Lab) {}

  // -------------------------------------------------------------------------------------------------
  // Runs

  async startRun(target?: Target): Promise<void> {
    requireTrust(vscode.workspace.isTrusted, 'Start Run');
    let config: string | null;
    if (target instanceof vscode.Uri) config = target.fsPath;
    else {
      const picked = await this.pickConfig();
      if (picked === undefined) return;
      if (picked === NEW_CONFIG) return void (await this.newConfig());
      config = picked === BUILTIN ? null : picked;
    }
    await this.launchRun(config);
  }

  /** Checks the config and the executables here, so that mistakes show at once and name their fix. */
  async launchRun(configFile: string | null): Promise<void> {
    requireTrust(vscode.workspace.isTrusted, 'Start Run');
    const s = this.lab.settings();
    let file = configFile;
    let parsed: RunConfig | null = null;
    let env: Record<string, string> | undefined;
    if (file) {
      // absp reads the file from disk: what the editor shows is what runs.
      const open = vscode.workspace.textDocuments.find((d) => d.uri.scheme === 'file' && d.uri.fsPath === file);
      if (open?.isDirty) await open.save();
      try {
        parsed = loadRunConfig(file);
      } catch (e) {
        if (e instanceof ConfigError) {
          const open = await notify.error(`ABSP: ${e.message}`, 'Open Config');
          if (open) void vscode.window.showTextDocument(vscode.Uri.file(file));
          return;
        }
        throw e;
      }
      if (parsed.engine.kind === 'torch') env = { ABSP_TORCH_PYTHON: await resolveTorchPython(s.pythonPath, findEnginePythonAsync) };
    } else if (s.defaultEngine === 'torch') {
      // The built-in experiment with the default engine set to torch: the sandbox model is small,
      // so it runs on the CPU in float32.
      const python = await resolveTorchPython(s.pythonPath, findEnginePythonAsync);
      env = { ABSP_TORCH_PYTHON: python };
      file = path.join(this.lab.context.globalStorageUri.fsPath, 'builtin-torch.absp.json');
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify({ engine: { kind: 'torch', device: 'cpu', dtype: 'float32' } }, null, 2));
    }
    fs.mkdirSync(s.runsFolder, { recursive: true });
    const title = file && configFile ? `run ${path.basename(file)}` : 'run of the built-in sandbox experiment';
    const cwd = file ? path.dirname(file) : vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? s.runsFolder;
    const job = this.lab.jobs.start({ kind: 'run', title, args: cliArgs.run(file, s.runsFolder), cwd, runsFolder: s.runsFolder, env });
    void vscode.commands.executeCommand('abspLab.runs.focus');
    // Open the dashboard on the new run as soon as the trainer has created it.
    const waitForDir = setInterval(() => {
      if (job.runDir) {
        clearInterval(waitForDir);
        this.lab.showPanel('dashboard', { runs: [job.runDir] });
      } else if (job.state === 'exited') clearInterval(waitForDir);
    }, 300);
  }

  private async pickConfig(): Promise<string | undefined> {
    const s = this.lab.settings();
    const found = await vscode.workspace.findFiles(s.configGlob, '**/{node_modules,.git,.e2e}/**', 200);
    type Item = vscode.QuickPickItem & { value: string };
    const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const items: Item[] = [
      ...found
        .map((u) => u.fsPath)
        .sort()
        .map((f) => ({ label: `$(file-code) ${path.basename(f)}`, description: root ? path.relative(root, path.dirname(f)) || '.' : path.dirname(f), value: f })),
      { label: '$(beaker) Built-in sandbox experiment', ...builtinExperimentEntry(defaultRunConfig(), s.defaultEngine, this.pastRuns()), value: BUILTIN },
      { label: '$(new-file) New config…', description: 'write a starter config to edit', value: NEW_CONFIG },
    ];
    const picked = await vscode.window.showQuickPick(items, { title: 'ABSP: Start Run', placeHolder: `A run config (${s.configGlob}), the built-in experiment, or a new config` });
    return picked?.value;
  }

  /** The runs this window lists, for the built-in experiment's "last time here". */
  private pastRuns(): PastRun[] {
    return this.lab.catalog.entries().flatMap((e) => (e.info ? [{ name: e.info.name, status: e.status, created: e.info.created, updated: e.info.updated }] : []));
  }

  async newConfig(): Promise<void> {
    const s = this.lab.settings();
    const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    let file: string | undefined;
    if (root) {
      const existing = new Set(fs.readdirSync(root));
      const name = await vscode.window.showInputBox({
        title: 'ABSP: New Run Config',
        prompt: 'File name of the new run config (in the workspace folder)',
        value: freeConfigName(existing),
        validateInput: (v) => (!/\.absp\.json$/.test(v) ? 'The name must end in .absp.json (so that Start Run finds it)' : /[/\\]/.test(v) ? 'A file name, without folders' : fs.existsSync(path.join(root, v)) ? 'A file with this name exists' : null),
      });
      if (!name) return;
      file = path.join(root, name);
    } else {
      const uri = await vscode.window.showSaveDialog({ title: 'ABSP: New Run Config', filters: { 'ABSP run config': ['absp.json'] } });
      if (!uri) return;
      file = uri.fsPath;
    }
    const stem = path.basename(file).replace(/\.absp\.json$/, '').replace(/[^A-Za-z0-9._-]/g, '-') || 'experiment';
    fs.writeFileSync(file, starterConfigText({ name: stem, engine: s.defaultEngine }), { flag: 'wx' });
    await vscode.window.showTextDocument(vscode.Uri.file(file));
    const start = await notify.info(
      `ABSP: wrote ${path.basename(file)}, a small ABSP experiment on the sandbox model. Hover a key to read what it means (absp run takes plain JSON, so the explanations live in the editor, not in comments).`,
      'Start Run',
    );
    if (start) await this.launchRun(file);
  }

  /** "ABSP: Set Up PyTorch Engine…": absp torch setup in a progress notification, its output in the log. */
  async setupTorch(): Promise<void> {
    const venv = defaultVenvDir();
    const go = await vscode.window.showInformationMessage(
      `ABSP: create the PyTorch engine's environment in ${venv}? It installs torch, transformers, peft, accelerate and safetensors with pip (several minutes; a CUDA build of torch on GPU machines is several GB).`,
      { modal: true },
      'CPU (pinned torch)',
      'GPU (CUDA torch)',
    );
    if (!go) return;
    this.lab.output.show(true);
    const report = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'ABSP: setting up the PyTorch engine', cancellable: false }, (progress) =>
      setupTorchEnv({
        venv,
        cuda: go.startsWith('GPU'),
        log: (line) => this.lab.output.appendLine(`  ${line}`),
        stage: (k, n, title) => {
          this.lab.output.appendLine(`[torch setup ${k}/${n}] ${title}`);
          progress.report({ message: `${k}/${n}: ${title}`, increment: 100 / n });
        },
      }),
    );
    if (!report.ok) throw new Error(`the PyTorch engine's environment does not work: ${report.problems.join('; ')} (details in the log)`);
    void notify.info(`ABSP: the PyTorch engine is ready: torch ${report.torch}, transformers ${report.transformers}, peft ${report.peft}; devices: ${(report.devices ?? []).join(', ')}.`);
  }

  /**
   * Asks first, saying what is kept and what resume will redo (the steps of the round in progress):
   * stopping is a decision, never a side effect of dismissing a notification.
   */
  async stopRun(target?: Target): Promise<void> {
    const dir = await this.runDir(target, 'Stop which run?', (e) => e.status === 'running');
    if (!dir) return;
    const job = this.lab.jobs.jobFor(dir);
    const label = this.lab.catalog.get(dir)?.summary.label ?? path.basename(dir);
    let read: ReturnType<typeof readRunProgress> | null = null;
    try {
      read = readRunProgress(dir);
    } catch {
      read = null; // unreadable for a moment (a write in progress): the question says less
    }
    // The job's own progress is the freshest; a run started elsewhere is read from its directory.
    const progress: RunProgress = job?.progress.phase ? { ...job.progress, phase: job.progress.phase } : read?.progress ?? { phase: 'training', round: null, step: null, totalSteps: null, fraction: null, text: '' };
    const question = stopQuestion(label, progress, read?.stepsPerRound ?? null, job?.state === 'stopping');
    const answer = await vscode.window.showWarningMessage(question.message, { modal: true, detail: question.detail }, question.confirm);
    if (answer !== question.confirm) return;
    const result = this.lab.jobs.stopRun(dir);
    const name = label;
    const messages: Record<typeof result, string> = {
      stopping: `Stopping ${name} after the current step; it will be marked stopped and can be resumed. Stop again to end it at once.`,
      killed: `Ended ${name} at once; its complete rounds are kept and resume continues from the last one.`,
      signalled: `Asked ${name}'s trainer (started outside this window) to stop after the current step.`,
      'not-running': `${name} is not running.`,
      elsewhere: `${name} runs on another machine (${safeHost(dir)}); stop it there.`,
    };
    void notify.info(`ABSP: ${messages[result]}`);
    await this.lab.tick();
  }

  async resumeRun(target?: Target): Promise<void> {
    requireTrust(vscode.workspace.isTrusted, 'Resume Run');
    const dir = await this.runDir(target, 'Resume which run?', (e) => !!e.info && e.status !== 'running' && e.status !== 'completed');
    if (!dir) return;
    const info = readRunInfo(dir);
    const entry = this.lab.catalog.get(dir);
    if (entry?.status === 'running') throw new Error(`${path.basename(dir)} is running; there is nothing to resume`);
    if (info.status === 'completed') {
      void notify.info(`ABSP: ${path.basename(dir)} is complete; there is nothing to resume.`);
      return;
    }
    const env = await this.torchEnv([info.engine]);
    const approved = await approveRunJudges([dir]);
    if (!approved) return;
    this.lab.jobs.start({ kind: 'resume', title: `resume of ${path.basename(dir)}`, args: cliArgs.resume(dir, approved), cwd: dir, runDir: dir, env });
    this.lab.showPanel('dashboard', { runs: [dir] });
  }

  // -------------------------------------------------------------------------------------------------
  // Panels

  async openDashboard(target?: Target): Promise<void> {
    const dir = dirOf(target);
    this.lab.showPanel('dashboard', dir ? { runs: [dir] } : null);
  }

  async openStepper(target?: Target): Promise<void> {
    const dir = dirOf(target);
    const round = target && !(target instanceof vscode.Uri) && 'round' in target && typeof target.round === 'number' ? target.round : undefined;
    this.lab.showPanel('stepper', dir ? { runs: [dir], ...(round !== undefined ? { round } : {}) } : null);
  }

  async compareAdapters(target?: Target): Promise<void> {
    const dir = dirOf(target);
    const round = target && !(target instanceof vscode.Uri) && 'round' in target && typeof target.round === 'number' ? target.round : undefined;
    this.lab.showPanel('adapter-diff', dir ? { runs: [dir], ...(round !== undefined ? { round } : {}) } : null);
  }

  // -------------------------------------------------------------------------------------------------
  // Cross-play, evaluation, export

  async runCrossplay(target?: Target): Promise<void> {
    requireTrust(vscode.workspace.isTrusted, 'Cross-Play');
    const first = dirOf(target);
    const usable = this.lab.catalog.entries().filter((e) => e.info && e.status !== 'running' && (e.info.rounds_completed ?? 0) > 0);
    if (usable.length === 0) throw new Error('cross-play needs a run with at least one complete round that is not running');
    const picked = await vscode.window.showQuickPick(
      usable.map((e) => ({ label: e.summary.label, description: `${e.info!.mode} · ${e.info!.rounds_completed} rounds · ${e.info!.base_model}`, detail: path.basename(e.dir), dir: e.dir, picked: e.dir === first })),
      { canPickMany: true, title: 'ABSP: Run Cross-Play', placeHolder: 'Runs whose attackers and defenders play each other (same base model); the matrix is written to the first' },
    );
    if (!picked || picked.length === 0) return;
    const dirs = [...picked].sort((a, b) => (a.dir === first ? -1 : b.dir === first ? 1 : 0)).map((p) => p.dir);
    const approved = await approveRunJudges(dirs.slice(0, 1));
    if (!approved) return;
    const env = await this.torchEnv(picked.map((p) => usable.find((e) => e.dir === p.dir)?.info?.engine));
    this.lab.jobs.start({ kind: 'crossplay', title: `cross-play of ${dirs.length} run${dirs.length > 1 ? 's' : ''}`, args: cliArgs.crossplay(dirs, approved), cwd: dirs[0], runDir: dirs[0], env });
  }

  /**
   * The environment of a job on runs of these engines: for torch, the Python of the user's pythonPath
   * setting or the set-up environment, checked now. Never one a run's config names.
   */
  private async torchEnv(engines: readonly (string | undefined)[]): Promise<Record<string, string> | undefined> {
    if (!engines.includes('torch')) return undefined;
    return { ABSP_TORCH_PYTHON: await resolveTorchPython(this.lab.settings().pythonPath, findEnginePythonAsync) };
  }

  async evaluate(target?: Target): Promise<void> {
    requireTrust(vscode.workspace.isTrusted, 'Evaluate');
    const dir = await this.runDir(target, 'Evaluate the defender of which run?', (e) => !!e.info);
    if (!dir) return;
    const data = await vscode.window.showOpenDialog({
      title: 'ABSP: Evaluate — a JSONL of {"prompt","harmful"} and/or {"prompt","answer"} lines',
      canSelectMany: false,
      filters: { 'JSON Lines': ['jsonl'] },
      defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
    });
    if (!data?.[0]) return;
    const approved = await approveRunJudges([dir]);
    if (!approved) return;
    const env = await this.torchEnv([this.lab.catalog.get(dir)?.info?.engine]);
    this.lab.jobs.start({ kind: 'eval', title: `evaluation of ${path.basename(dir)} on ${path.basename(data[0].fsPath)}`, args: cliArgs.eval(dir, data[0].fsPath, { approved }), cwd: dir, runDir: dir, env });
  }

  async exportSeeds(target?: Target): Promise<void> {
    const dir = await this.runDir(target, 'Export the annotated failures of which run?', (e) => this.lab.annotations.of(e.dir).length > 0);
    if (!dir) return;
    const annotations = this.lab.annotations.of(dir);
    if (annotations.length === 0) {
      void notify.info(`ABSP: ${path.basename(dir)} has no annotations yet. Open an exchange (the stepper's "Annotate in editor") and comment on it.`);
      return;
    }
    const labels = (Object.keys(LABEL_TITLES) as AnnotationLabel[]).filter((l) => annotations.some((a) => a.label === l));
    const pickedLabels = await vscode.window.showQuickPick(
      labels.map((l) => ({ label: LABEL_TITLES[l], value: l, picked: true, description: `${annotations.filter((a) => a.label === l).length} annotated` })),
      { canPickMany: true, title: 'ABSP: Export Annotated Failures', placeHolder: 'Labels to export (a jailbreak becomes a harmful seed, an over-refusal a benign one)' },
    );
    if (!pickedLabels || pickedLabels.length === 0) return;
    const suggested = vscode.Uri.file(path.join(seedsFolder(vscode.workspace.workspaceFolders?.[0]?.uri.fsPath, dir), `${path.basename(dir)}-annotated.jsonl`));
    const target2 = await vscode.window.showSaveDialog({ title: 'ABSP: Save the seeds file', defaultUri: suggested, filters: { 'JSON Lines': ['jsonl'] } });
    if (!target2) return;
    const result = exportAnnotatedSeeds(dir, target2.fsPath, pickedLabels.map((p) => p.value));
    this.lab.log(`exported ${result.seeds.length} seeds from ${dir} to ${target2.fsPath}${result.missing.length ? ` (${result.missing.length} annotations name exchanges that are no longer valid)` : ''}`);
    const missing = result.missing.length ? ` ${result.missing.length} annotation(s) name exchanges that are no longer in the run and were left out.` : '';
    const next = await notify.info(
      `ABSP: wrote ${result.seeds.length} seed${result.seeds.length === 1 ? '' : 's'} to ${path.basename(target2.fsPath)}.${missing} A run trains on them with "world": {"kind": "seeds", "file": …}.`,
      'Open File',
      'New Config Using Them',
    );
    if (next === 'Open File') void vscode.window.showTextDocument(target2);
    if (next === 'New Config Using Them') await this.newSeedsConfig(target2.fsPath);
  }

  private async newSeedsConfig(seedsFile: string): Promise<void> {
    const s = this.lab.settings();
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? path.dirname(seedsFile);
    const name = freeConfigName(new Set(fs.readdirSync(folder)), 'annotated-seeds');
    const file = path.join(folder, name);
    fs.writeFileSync(file, starterConfigText({ name: name.replace(/\.absp\.json$/, ''), engine: s.defaultEngine, seedsFile: path.relative(folder, seedsFile) }), { flag: 'wx' });
    await vscode.window.showTextDocument(vscode.Uri.file(file));
  }

  // -------------------------------------------------------------------------------------------------
  // Folders and exchanges

  async openRunDirectory(): Promise<void> {
    const picked = await vscode.window.showOpenDialog({ title: 'ABSP: Open a run directory (with its run.json)', canSelectFolders: true, canSelectFiles: false, canSelectMany: false });
    if (!picked?.[0]) return;
    const dir = picked[0].fsPath;
    readRunInfo(dir); // a clear error when it is not a run, is corrupt or too new
    await this.lab.addExtraRun(dir);
    this.lab.showPanel('dashboard', { runs: [path.resolve(dir)] });
  }

  async reveal(target?: Target): Promise<void> {
    const t = target as Partial<{ path: string; dir: string }> | undefined;
    const p = t?.path ?? t?.dir ?? (target instanceof vscode.Uri ? target.fsPath : undefined);
    if (!p) return;
    const uri = vscode.Uri.file(p);
    const inWorkspace = vscode.workspace.getWorkspaceFolder(uri);
    await vscode.commands.executeCommand(inWorkspace ? 'revealInExplorer' : 'revealFileInOS', uri);
  }

  async openExchange(runDir?: string, round?: number, exchange?: string): Promise<void> {
    if (typeof runDir !== 'string' || typeof round !== 'number' || typeof exchange !== 'string') {
      this.lab.showPanel('stepper');
      return;
    }
    await this.lab.comments.open({ runDir, round, exchange });
  }

  // -------------------------------------------------------------------------------------------------

  /** The run a command is about: the clicked node's, else one the user picks. */
  private async runDir(target: Target, question: string, fits: (e: NonNullable<ReturnType<Lab['catalog']['get']>>) => boolean): Promise<string | undefined> {
    const dir = dirOf(target);
    if (dir) return dir;
    await this.lab.tick();
    const entries = this.lab.catalog.entries().filter((e) => !e.summary.error && fits(e));
    if (entries.length === 0) {
      void notify.info(`ABSP: no run fits (${question.replace(/\?$/, '').toLowerCase()}). Runs are listed from ${this.lab.settings().runsFolder}.`);
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(
      entries.map((e) => ({ label: e.summary.label, description: `${e.status} · ${e.info?.rounds_completed}/${e.info?.rounds_planned} rounds · ${e.info?.mode}`, detail: path.basename(e.dir), dir: e.dir })),
      { title: `ABSP: ${question}` },
    );
    return picked?.dir;
  }
}

function dirOf(target: Target): string | undefined {
  if (!target) return undefined;
  if (target instanceof vscode.Uri) return fs.existsSync(runLayout(target.fsPath).runJson) ? target.fsPath : undefined;
  return typeof target.dir === 'string' ? target.dir : undefined;
}

function safeHost(dir: string): string {
  try {
    return readRunInfo(dir).host ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
