/**
 * Where a model directory is: a path, or the name `builtin:sandbox` for the sandbox model shipped
 * with the extension.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const BUILTIN_SANDBOX = 'builtin:sandbox';

/** The folder of the extension or package (where package.json is). */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'extension'))) return dir;
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'dist'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

export function resolveModelDir(spec: string): string {
  if (spec === BUILTIN_SANDBOX) return path.join(packageRoot(), 'models', 'sandbox');
  return path.resolve(spec);
}
