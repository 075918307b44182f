/**
 * The project's Python environment (the PyTorch engine's: `absp torch setup`, which scripts/test.sh
 * runs) for tests that install pinned packages into it (garak, the bundled SmolLM2). Without one the
 * tests that need it skip with the reason.
 */
import { findEnginePython, missingEnvironmentMessage } from '../../extension/engine/torch/python-env';

export function projectPythonWithPip(): { python: string | null; reason: string } {
  const python = findEnginePython();
  return python ? { python, reason: '' } : { python: null, reason: missingEnvironmentMessage() };
}
