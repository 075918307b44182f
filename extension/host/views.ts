/** The Runs and Annotations views of the ABSP Lab activity-bar container. */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AnnotationIndex } from './annotation-index';
import type { RunCatalog } from './run-catalog';
import { contextValue, roundChildren, roundNodes, runNode, type AnnotationNode, type AnnotationRunNode, type RunNode, type TreeNode } from './tree-nodes';

const STATUS_ICONS: Record<string, [string, string?]> = {
  running: ['sync~spin', 'charts.blue'],
  completed: ['pass', 'testing.iconPassed'],
  failed: ['error', 'testing.iconFailed'],
  paused: ['debug-pause', 'charts.yellow'],
  stopped: ['debug-stop'],
  interrupted: ['warning', 'charts.yellow'],
};

const LABEL_ICONS: Record<string, [string, string?]> = {
  jailbreak: ['flame', 'charts.red'],
  'over-refusal': ['circle-slash', 'charts.yellow'],
  'judge-error': ['law', 'charts.purple'],
  other: ['note'],
};

function icon([id, color]: [string, string?]): vscode.ThemeIcon {
  return new vscode.ThemeIcon(id, color ? new vscode.ThemeColor(color) : undefined);
}

export class RunsTreeProvider implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private progress = new Map<string, string>();
  /** The run nodes last handed out: a progress update redraws just that node (VS Code knows nodes by identity). */
  private runNodes = new Map<string, RunNode>();
  private lastProgressDraw = new Map<string, number>();

  constructor(private readonly catalog: RunCatalog) {}

  /** Redraws the whole tree (rounds and adapters are read again when expanded). */
  refresh(): void {
    this.changed.fire(undefined);
  }

  /** A job's progress line for a live run's description; redrawn at most once a second. */
  setProgress(runDir: string, text: string | null): void {
    if (text) this.progress.set(runDir, text);
    else this.progress.delete(runDir);
    const node = this.runNodes.get(runDir);
    const now = Date.now();
    if (!node || (text && now - (this.lastProgressDraw.get(runDir) ?? 0) < 1000)) return;
    this.lastProgressDraw.set(runDir, now);
    const entry = this.catalog.get(runDir);
    if (entry) node.description = runNode(entry, text ?? undefined).description;
    this.changed.fire(node);
  }

  getChildren(node?: TreeNode): TreeNode[] {
    if (!node) {
      const nodes = this.catalog.entries().map((e) => runNode(e, this.progress.get(e.dir)));
      this.runNodes = new Map(nodes.map((n) => [n.dir, n]));
      return nodes;
    }
    if (node.kind === 'run') return roundNodes(node);
    if (node.kind === 'round') return roundChildren(node);
    return [];
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    switch (node.kind) {
      case 'run': {
        const item = new vscode.TreeItem(node.label, node.error ? vscode.TreeItemCollapsibleState.None : vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `run:${node.dir}`;
        item.description = node.description;
        item.tooltip = node.tooltip;
        item.iconPath = node.error ? icon(['error', 'errorForeground']) : icon(STATUS_ICONS[node.status ?? 'interrupted'] ?? ['circle-outline']);
        item.contextValue = contextValue(node);
        item.resourceUri = vscode.Uri.file(node.dir);
        if (!node.error) item.command = { command: 'abspLab.openDashboard', title: 'Open Dashboard', arguments: [node] };
        return item;
      }
      case 'round': {
        const item = new vscode.TreeItem(node.round === 0 ? 'Round 0' : `Round ${node.round}`, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = `round:${node.dir}:${node.round}:${node.complete}`;
        item.description = node.description;
        item.iconPath = new vscode.ThemeIcon(node.complete ? 'milestone' : 'loading~spin');
        item.contextValue = node.complete ? 'round' : 'round live';
        return item;
      }
      case 'adapter': {
        const item = new vscode.TreeItem(node.slot, vscode.TreeItemCollapsibleState.None);
        item.id = `adapter:${node.path}`;
        item.description = node.description;
        item.tooltip = node.path;
        item.iconPath = new vscode.ThemeIcon(node.slot === 'attacker' ? 'zap' : node.slot === 'defender' ? 'shield' : 'layers');
        item.contextValue = 'adapter';
        item.resourceUri = vscode.Uri.file(node.path);
        item.command = { command: 'abspLab.compareAdapters', title: 'Compare Adapters', arguments: [node] };
        return item;
      }
      case 'transcript': {
        const item = new vscode.TreeItem('Transcript', vscode.TreeItemCollapsibleState.None);
        item.id = `transcript:${node.path}`;
        item.description = node.description;
        item.tooltip = node.path;
        item.iconPath = new vscode.ThemeIcon('comment-discussion');
        item.contextValue = 'transcript';
        item.command = { command: 'abspLab.openStepper', title: 'Open Dialogue Stepper', arguments: [node] };
        return item;
      }
      default:
        return new vscode.TreeItem('?');
    }
  }

  getParent(): undefined {
    return undefined;
  }

  dispose(): void {
    this.changed.dispose();
  }
}

export class AnnotationsTreeProvider implements vscode.TreeDataProvider<AnnotationRunNode | AnnotationNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(
    private readonly index: AnnotationIndex,
    /** A run's label ("name · start time") as the Runs view shows it. */
    private readonly labelOf: (dir: string) => string | undefined = () => undefined,
  ) {}

  refresh(): void {
    this.changed.fire(undefined);
  }

  getChildren(node?: AnnotationRunNode | AnnotationNode): (AnnotationRunNode | AnnotationNode)[] {
    if (!node) {
      return this.index
        .runs()
        .map((r) => ({ kind: 'annotation-run' as const, dir: r.dir, label: this.labelOf(r.dir) ?? path.basename(r.dir), count: r.annotations.length }))
        .sort((a, b) => path.basename(b.dir).localeCompare(path.basename(a.dir)));
    }
    if (node.kind === 'annotation-run') return this.index.of(node.dir).map((annotation) => ({ kind: 'annotation' as const, dir: node.dir, annotation }));
    return [];
  }

  getTreeItem(node: AnnotationRunNode | AnnotationNode): vscode.TreeItem {
    if (node.kind === 'annotation-run') {
      const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.Expanded);
      item.id = `annotations:${node.dir}`;
      item.description = `${node.count} annotation${node.count === 1 ? '' : 's'}`;
      item.iconPath = new vscode.ThemeIcon('beaker');
      item.contextValue = 'annotation-run';
      return item;
    }
    const a = node.annotation;
    const item = new vscode.TreeItem(`${a.label}: ${a.note.split('\n')[0] || '(no note)'}`, vscode.TreeItemCollapsibleState.None);
    item.id = `annotation:${node.dir}:${a.id}`;
    item.description = `${a.exchange} · round ${a.round}${a.span ? ` · ${a.span.field}` : ''}`;
    item.tooltip = new vscode.MarkdownString().appendText(`${a.label} — ${a.exchange} (round ${a.round})\n\n${a.note}`);
    item.iconPath = icon(LABEL_ICONS[a.label] ?? ['note']);
    item.contextValue = 'annotation';
    item.command = { command: 'abspLab.openAnnotation', title: 'Open Annotation', arguments: [node] };
    return item;
  }

  dispose(): void {
    this.changed.dispose();
  }
}

export type { RunNode };
