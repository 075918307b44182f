/**
 * Temporary folders for tests, removed when the whole suite ends (a mocha root hook, registered in
 * .mocharc.json), so a run of the suite leaves nothing in the system's temp folder. Set
 * ABSP_KEEP_TEST_DIRS=1 to keep them for a post-mortem.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made: string[] = [];

export function tempDir(prefix = 'absp-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export const mochaHooks = {
  afterAll(): void {
    if (process.env.ABSP_KEEP_TEST_DIRS) return;
    for (const dir of made.splice(0)) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // A test that made a folder read-only keeps it; the rest still go.
      }
    }
  },
};
