/**
 * The project's Python environment (the PyTorch engine's: `absp torch setup`, which scripts/test.sh
 * runs) for tests that install pinned packages into it (garak, the bundled SmolLM2). Without one the
 * tests that need it skip with the reason — except where the run says the environment must be there
 * (ABSP_TEST_REQUIRE_ENGINE=1, which scripts/test.sh sets after installing it): then they fail, so a
 * CI run cannot pass by skipping the tests on real models and real data.
 */
import { findEnginePython, missingEnvironmentMessage } from '../../extension/engine/torch/python-env';

export function projectPythonWithPip(): { python: string | null; reason: string } {
  const python = findEnginePython();
  return python ? { python, reason: '' } : { python: null, reason: missingEnvironmentMessage() };
}

export const ENGINE_REQUIRED = process.env.ABSP_TEST_REQUIRE_ENGINE === '1';

/** Skips the test or suite of `ctx`, saying why; fails instead when the run requires the environment. */
export function skipWithoutEnvironment(ctx: Mocha.Context, reason: string): never {
  if (ENGINE_REQUIRED) throw new Error(`ABSP_TEST_REQUIRE_ENGINE=1, but: ${reason}`);
  process.stderr.write(`      skipped: ${reason}\n`);
  ctx.skip();
}
