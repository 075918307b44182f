/**
 * The annotations in force in every known run, kept current by looking at each run's
 * annotations.jsonl (its size and time) on the host's refresh tick: edits made by this window, another
 * window or a script all show up in the Annotations view and in open exchange documents. Pure Node.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readAnnotations, runLayout, type Annotation } from '../rundir';
import { Emitter } from './emitter';

export class AnnotationIndex {
  private byRun = new Map<string, { stamp: string; annotations: Annotation[] }>();
  private readonly changeEmitter = new Emitter<string[]>();
  /** Fires with the run directories whose annotations changed. */
  readonly onDidChange = this.changeEmitter.event;

  /** Annotations of one run (read now if the run was not looked at yet). */
  of(runDir: string): Annotation[] {
    const dir = path.resolve(runDir);
    if (!this.byRun.has(dir)) this.refresh([...this.byRun.keys(), dir]);
    return this.byRun.get(dir)?.annotations ?? [];
  }

  runs(): { dir: string; annotations: Annotation[] }[] {
    return [...this.byRun].filter(([, v]) => v.annotations.length > 0).map(([dir, v]) => ({ dir, annotations: v.annotations }));
  }

  /** Re-reads the runs whose annotations file changed; returns (and fires) the changed runs. */
  refresh(runDirs: readonly string[]): string[] {
    const changed: string[] = [];
    const next = new Map<string, { stamp: string; annotations: Annotation[] }>();
    for (const d of runDirs) {
      const dir = path.resolve(d);
      const stamp = stampOf(dir);
      const previous = this.byRun.get(dir);
      if (previous && previous.stamp === stamp) {
        next.set(dir, previous);
        continue;
      }
      let annotations: Annotation[] = [];
      try {
        annotations = readAnnotations(dir).annotations;
      } catch {
        annotations = [];
      }
      next.set(dir, { stamp, annotations });
      if (previous || annotations.length) changed.push(dir);
    }
    for (const dir of this.byRun.keys()) if (!next.has(dir) && this.byRun.get(dir)!.annotations.length) changed.push(dir);
    this.byRun = next;
    if (changed.length) this.changeEmitter.fire(changed);
    return changed;
  }

  dispose(): void {
    this.changeEmitter.dispose();
  }
}

function stampOf(dir: string): string {
  try {
    const st = fs.statSync(runLayout(dir).annotations);
    return `${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch {
    return 'absent';
  }
}
