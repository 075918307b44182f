/** A minimal event emitter in VS Code's style (`event(listener)` returns a disposable), without `vscode`. */
export interface Disposable {
  dispose(): void;
}

export type Listener<T> = (value: T) => void;
export type Event<T> = (listener: Listener<T>) => Disposable;

export class Emitter<T> {
  private listeners = new Set<Listener<T>>();

  readonly event: Event<T> = (listener) => {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  };

  fire(value: T): void {
    for (const l of [...this.listeners]) {
      try {
        l(value);
      } catch (e) {
        // One broken listener must not stop the others (or the poll loop that fired the event).
        console.error('absp-lab: listener failed', e);
      }
    }
  }

  dispose(): void {
    this.listeners.clear();
  }
}
