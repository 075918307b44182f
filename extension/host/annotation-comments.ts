/**
 * Annotating exchanges in the editor. An exchange opens as a read-only document under the
 * `absp-exchange:` scheme (rendered by exchange-document.ts); the Comments API lets the user comment
 * on a selection (a span of one field) or on the first lines (the whole exchange), and the buttons
 * under the comment box save it with a label — jailbreak, over-refusal, judge error, other — as an
 * annotation in the run's annotations.jsonl. Saved annotations come back as comment threads whenever
 * the exchange is open, and follow edits made anywhere (the AnnotationIndex watches the file).
 */
import * as vscode from 'vscode';
import { notify } from './notify';
import { RunReader, deleteAnnotation, putAnnotation, type Annotation, type AnnotationLabel, type Exchange } from '../rundir';
import type { AnnotationIndex } from './annotation-index';
import {
  describeSpan,
  exchangeUriParts,
  offsetAt,
  offsetsFromSpan,
  parseExchangeQuery,
  positionAt,
  renderExchange,
  spanFromOffsets,
  EXCHANGE_SCHEME,
  type ExchangeAddress,
  type ExchangeDocument,
} from './exchange-document';
import * as path from 'node:path';

export const COMMENT_CONTROLLER_ID = 'absp-annotations';
export const EXCHANGE_LANGUAGE = 'absp-exchange';

export const LABEL_TITLES: Record<AnnotationLabel, string> = {
  jailbreak: 'Jailbreak',
  'over-refusal': 'Over-refusal',
  'judge-error': 'Judge error',
  other: 'Other',
};

interface Rendered {
  address: ExchangeAddress;
  doc: ExchangeDocument | null;
  exchange: Exchange | null;
}

/**
 * `absp-exchange:` documents, as a read-only file system: VS Code restores the editors of a file
 * system after a window reload (activating the extension for its scheme), where it drops those of a
 * mere content provider — and left an empty editor group behind.
 */
export class ExchangeDocuments implements vscode.FileSystemProvider {
  private readonly cache = new Map<string, Rendered>();
  private readonly changed = new vscode.EventEmitter<vscode.FileChangeEvent[]>();
  /** Exchanges never change once written: nothing to announce. */
  readonly onDidChangeFile = this.changed.event;

  uriFor(a: ExchangeAddress): vscode.Uri {
    return vscode.Uri.from(exchangeUriParts(a, path.basename(a.runDir)));
  }

  /** The document's text: the exchange, or why it is not there. */
  text(uri: vscode.Uri): string {
    const r = this.render(uri);
    if (r.doc) return r.doc.text;
    if (!r.address.runDir) return `This is not an ABSP exchange address: ${uri.toString()}\n`;
    return `Exchange ${r.address.exchange} is not among the valid exchanges of round ${r.address.round} of ${r.address.runDir}.\nThe run may have been moved, or the round replayed by a resume.\n`;
  }

  watch(): vscode.Disposable {
    return new vscode.Disposable(() => {});
  }

  stat(uri: vscode.Uri): vscode.FileStat {
    if (!parseExchangeQuery(uri.query)) throw vscode.FileSystemError.FileNotFound(uri);
    return { type: vscode.FileType.File, ctime: 0, mtime: 0, size: Buffer.byteLength(this.text(uri)), permissions: vscode.FilePermission.Readonly };
  }

  readFile(uri: vscode.Uri): Uint8Array {
    if (!parseExchangeQuery(uri.query)) throw vscode.FileSystemError.FileNotFound(uri);
    return Buffer.from(this.text(uri), 'utf8');
  }

  readDirectory(uri: vscode.Uri): [string, vscode.FileType][] {
    throw vscode.FileSystemError.FileNotADirectory(uri);
  }

  createDirectory(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  writeFile(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  delete(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  rename(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  get(uri: vscode.Uri): Rendered {
    return this.cache.get(uri.toString()) ?? this.render(uri);
  }

  private render(uri: vscode.Uri): Rendered {
    const address = parseExchangeQuery(uri.query);
    if (!address) return { address: { runDir: '', round: 0, exchange: '' }, doc: null, exchange: null };
    let exchange: Exchange | null = null;
    try {
      exchange = RunReader.open(address.runDir).transcript(address.round).find((x) => x.id === address.exchange) ?? null;
    } catch {
      exchange = null;
    }
    const rendered = { address, exchange, doc: exchange ? renderExchange(exchange, path.basename(address.runDir)) : null };
    // Exchanges never change once written; one not found (yet) is looked for again next time.
    if (exchange) this.cache.set(uri.toString(), rendered);
    return rendered;
  }
}

class AnnotationComment implements vscode.Comment {
  mode = vscode.CommentMode.Preview;
  contextValue = 'annotation';
  author: vscode.CommentAuthorInformation;
  label: string;
  body: string;
  timestamp: Date;

  constructor(
    readonly annotation: Annotation,
    readonly runDir: string,
    readonly thread: vscode.CommentThread,
    spanText: string,
  ) {
    this.author = { name: LABEL_TITLES[annotation.label] };
    this.label = spanText;
    this.body = annotation.note;
    this.timestamp = new Date(annotation.updated);
  }
}

export class AnnotationComments implements vscode.Disposable {
  readonly controller: vscode.CommentController;
  private readonly threads = new Map<string, vscode.CommentThread[]>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly docs: ExchangeDocuments,
    private readonly index: AnnotationIndex,
    private readonly log: (line: string) => void,
  ) {
    this.controller = vscode.comments.createCommentController(COMMENT_CONTROLLER_ID, 'ABSP annotations');
    this.controller.options = {
      prompt: 'Annotate this exchange…',
      placeHolder: 'A note (e.g. "the role-play frame gets through"), then pick a label below',
    };
    this.controller.commentingRangeProvider = {
      provideCommentingRanges: (document) => {
        if (document.uri.scheme !== EXCHANGE_SCHEME || !this.docs.get(document.uri).doc) return [];
        return [new vscode.Range(0, 0, Math.max(0, document.lineCount - 1), 0)];
      },
    };
    this.disposables.push(
      this.controller,
      vscode.workspace.onDidOpenTextDocument((d) => d.uri.scheme === EXCHANGE_SCHEME && this.sync(d.uri)),
      vscode.workspace.onDidCloseTextDocument((d) => d.uri.scheme === EXCHANGE_SCHEME && this.clear(d.uri.toString())),
      index.onDidChange((dirs) => this.syncRuns(dirs)),
    );
    for (const d of vscode.workspace.textDocuments) if (d.uri.scheme === EXCHANGE_SCHEME) this.sync(d.uri);
  }

  /** Opens an exchange beside the panel, with its annotations, selecting a span when given. */
  async open(address: ExchangeAddress, focus?: Annotation): Promise<vscode.TextEditor> {
    const uri = this.docs.uriFor(address);
    let document = await vscode.workspace.openTextDocument(uri);
    // Its own language: word wrap and headings (package.json), and no plain-text features in the way.
    if (document.languageId !== EXCHANGE_LANGUAGE) document = await vscode.languages.setTextDocumentLanguage(document, EXCHANGE_LANGUAGE);
    const editor = await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.Beside, preview: false });
    this.sync(uri);
    const doc = this.docs.get(uri).doc;
    if (focus?.span && doc) {
      const at = offsetsFromSpan(doc, focus.span);
      if (at) {
        const range = new vscode.Range(document.positionAt(at.start), document.positionAt(at.end));
        editor.selection = new vscode.Selection(range.start, range.end);
        editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      }
    }
    return editor;
  }

  /** Saves a new comment (typed in the comment box of a fresh thread) as an annotation with this label. */
  async create(reply: vscode.CommentReply, label: AnnotationLabel): Promise<Annotation | undefined> {
    const thread = reply.thread;
    const { address, doc } = this.docs.get(thread.uri);
    if (!doc || !address.runDir) {
      void notify.error('ABSP Lab: this document is not an exchange of a run; nothing was saved.');
      return undefined;
    }
    const span = thread.range ? spanFromOffsets(doc, ...this.offsetsOf(doc, thread.range)) : null;
    const r = thread.range;
    this.log(`comment on ${r ? `${r.start.line}:${r.start.character}-${r.end.line}:${r.end.character}` : 'no range'} of ${address.exchange}: ${span ? `${span.field} [${span.start}, ${span.end})` : 'the whole exchange'}`);
    try {
      const annotation = putAnnotation(address.runDir, { exchange: address.exchange, round: address.round, label, note: reply.text.trim(), span });
      this.log(`annotated ${address.exchange} (round ${address.round}) as ${label} in ${address.runDir}`);
      thread.dispose();
      this.index.refresh([address.runDir]);
      this.sync(thread.uri);
      return annotation;
    } catch (e) {
      void notify.error(`ABSP Lab: the annotation could not be saved: ${(e as Error).message}`);
      return undefined;
    }
  }

  startEdit(comment: unknown): void {
    if (!(comment instanceof AnnotationComment)) return;
    comment.mode = vscode.CommentMode.Editing;
    comment.thread.comments = [...comment.thread.comments];
  }

  cancelEdit(comment: unknown): void {
    if (!(comment instanceof AnnotationComment)) return;
    comment.body = comment.annotation.note;
    comment.mode = vscode.CommentMode.Preview;
    comment.thread.comments = [...comment.thread.comments];
  }

  async saveEdit(comment: unknown): Promise<void> {
    if (!(comment instanceof AnnotationComment)) return;
    const body = typeof comment.body === 'string' ? comment.body : String(comment.body);
    await this.update(comment.runDir, comment.annotation, { note: body.trim() });
  }

  async changeLabel(comment: unknown): Promise<void> {
    if (!(comment instanceof AnnotationComment)) return;
    const label = await pickLabel(comment.annotation.label);
    if (label) await this.update(comment.runDir, comment.annotation, { label });
  }

  /** Deletes an annotation given as a comment (from the editor) or as its run and record (from a view). */
  async delete(target: unknown): Promise<void> {
    const found = target instanceof AnnotationComment ? { runDir: target.runDir, annotation: target.annotation } : (target as { dir?: string; annotation?: Annotation });
    const runDir = 'runDir' in found ? found.runDir : found.dir;
    if (!runDir || !found.annotation) return;
    try {
      deleteAnnotation(runDir, found.annotation.id);
      this.log(`deleted annotation ${found.annotation.id} of ${found.annotation.exchange} in ${runDir}`);
      this.index.refresh([runDir]);
    } catch (e) {
      void notify.error(`ABSP Lab: the annotation could not be deleted: ${(e as Error).message}`);
    }
  }

  private async update(runDir: string, a: Annotation, patch: { note?: string; label?: AnnotationLabel }): Promise<void> {
    try {
      putAnnotation(runDir, { id: a.id, exchange: a.exchange, round: a.round, label: patch.label ?? a.label, note: patch.note ?? a.note, span: a.span });
      this.index.refresh([runDir]);
    } catch (e) {
      void notify.error(`ABSP Lab: the annotation could not be saved: ${(e as Error).message}`);
    }
  }

  /** A range as document offsets; an empty range (a click in the gutter) means its whole line(s). */
  private offsetsOf(doc: ExchangeDocument, range: vscode.Range): [number, number] {
    if (range.isEmpty) return [offsetAt(doc.text, { line: range.start.line, character: 0 }), offsetAt(doc.text, { line: range.end.line, character: Number.MAX_SAFE_INTEGER })];
    return [offsetAt(doc.text, range.start), offsetAt(doc.text, range.end)];
  }

  private syncRuns(dirs: string[]): void {
    const wanted = new Set(dirs.map((d) => path.resolve(d)));
    for (const d of vscode.workspace.textDocuments) {
      if (d.uri.scheme !== EXCHANGE_SCHEME) continue;
      const a = parseExchangeQuery(d.uri.query);
      if (a && wanted.has(path.resolve(a.runDir))) this.sync(d.uri);
    }
  }

  /** Shows the exchange's saved annotations as comment threads (again, replacing the old ones). */
  sync(uri: vscode.Uri): void {
    const key = uri.toString();
    this.clear(key);
    const { address, doc } = this.docs.get(uri);
    if (!doc || !address.runDir) return;
    const threads: vscode.CommentThread[] = [];
    for (const a of this.index.of(address.runDir).filter((x) => x.exchange === address.exchange && x.round === address.round)) {
      const at = a.span ? offsetsFromSpan(doc, a.span) : null;
      const start = at ? positionAt(doc.text, at.start) : { line: 0, character: 0 };
      const end = at ? positionAt(doc.text, at.end) : { line: 0, character: 0 };
      const range = new vscode.Range(start.line, start.character, end.line, end.character);
      const thread = this.controller.createCommentThread(uri, range, []);
      const spanText = a.span && !at ? `${a.span.field} (not in this exchange)` : describeSpan(doc, a.span);
      thread.comments = [new AnnotationComment(a, address.runDir, thread, spanText)];
      thread.label = `${LABEL_TITLES[a.label]} · ${spanText}`;
      thread.canReply = false;
      thread.contextValue = 'annotation';
      thread.collapsibleState = vscode.CommentThreadCollapsibleState.Expanded;
      threads.push(thread);
    }
    this.threads.set(key, threads);
  }

  private clear(key: string): void {
    for (const t of this.threads.get(key) ?? []) t.dispose();
    this.threads.delete(key);
  }

  dispose(): void {
    for (const key of [...this.threads.keys()]) this.clear(key);
    for (const d of this.disposables) d.dispose();
  }
}

export async function pickLabel(current?: AnnotationLabel): Promise<AnnotationLabel | undefined> {
  const items = (Object.keys(LABEL_TITLES) as AnnotationLabel[]).map((label) => ({ label: LABEL_TITLES[label], value: label, picked: label === current, description: label === current ? 'current' : undefined }));
  return (await vscode.window.showQuickPick(items, { title: 'Annotation label' }))?.value;
}
