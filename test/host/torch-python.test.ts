/** Which Python a torch run started from the editor uses, and the message when there is none. */
import { strict as assert } from 'node:assert';
import { MissingExecutableError, MissingTorchEnvironmentError, resolveTorchPython } from '../../extension/host/executables';

describe('host: the torch engine\'s Python', () => {
  const seen: (string | null | undefined)[] = [];
  const find = (works: string[]) => async (explicit?: string | null) => {
    seen.push(explicit);
    if (explicit) return works.includes(explicit) ? explicit : null;
    return works[0] ?? null;
  };

  it('the pythonPath setting wins over the set-up environment; there is no third, run-chosen source', async () => {
    // Paths that exist stand in for Pythons; `find` decides which ones work.
    const setting = '/bin/sh';
    assert.equal(await resolveTorchPython(setting, find([setting])), setting);
    assert.equal(await resolveTorchPython('python3.11', find(['python3.11'])), 'python3.11');
    assert.equal(await resolveTorchPython('', find(['/home/u/.cache/absp-lab/torch-venv/bin/python'])), '/home/u/.cache/absp-lab/torch-venv/bin/python');
    assert.deepEqual(seen.slice(-1), [null]);
    assert.equal(resolveTorchPython.length, 2, 'resolveTorchPython takes the setting and the finder only');
  });

  it('no environment: an error that says to run "ABSP: Set Up PyTorch Engine…"', async () => {
    await assert.rejects(resolveTorchPython('', find([])), (e: Error) => e instanceof MissingTorchEnvironmentError && /Set Up PyTorch Engine/.test(e.message) && /absp torch setup/.test(e.message));
    await assert.rejects(resolveTorchPython('python3', find([])), (e: Error) => e instanceof MissingTorchEnvironmentError && /"python3" cannot import torch, transformers and peft/.test(e.message));
    await assert.rejects(resolveTorchPython('/no/such/python', find([])), (e: Error) => e instanceof MissingExecutableError && /does not exist/.test(e.message));
  });
});
