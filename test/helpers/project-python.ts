/**
 * The project's Python environment for tests that install pinned packages into it (garak, the
 * bundled SmolLM2): the one `projectPython()` names, when it runs and has pip. Otherwise the tests
 * that need it skip with the reason.
 */
import { spawnSync } from 'node:child_process';
import { projectPython } from '../../extension/util/project-python';

let cached: { python: string | null; reason: string } | undefined;

export function projectPythonWithPip(): { python: string | null; reason: string } {
  if (cached) return cached;
  // Only an environment named on purpose: a test must not install packages into the machine's own Python.
  if (!process.env.ABSP_PYTHON) return (cached = { python: null, reason: "no project Python environment (set ABSP_PYTHON to one; pinned packages get installed into it)" });
  const python = projectPython();
  const r = spawnSync(python, ['-m', 'pip', '--version'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status === 0) cached = { python, reason: '' };
  else cached = { python: null, reason: `the project's Python (${python}; set ABSP_PYTHON) has no working pip` };
  return cached;
}
