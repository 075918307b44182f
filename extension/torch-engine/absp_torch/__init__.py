"""The PyTorch engine of ABSP Lab.

One frozen Hugging Face causal LM (Qwen2 or Llama), role policies as named PEFT LoRA adapters on it
(or full copies in shared-full mode), driven by the TypeScript trainer over stdin/stdout, one JSON
message per line (see protocol.py). Each module is one concept:

  protocol   the wire format: requests, responses, errors, non-finite numbers
  rng        the trainer's seeded random stream, so sampling matches the built-in engine
  checkpoint loading a model directory safely (safetensors only, no remote code)
  adapters   PEFT adapters: create, load, save, fingerprint
  sampling   next-token choice (greedy, temperature, top-p) from per-row uniforms
  optim      optimisers with the built-in engine's semantics and state format
  engine     the engine itself: policies, generation, log-probs, training steps
  distributed torchrun: rank 0 speaks the protocol, the others follow
  server     the request loop
  doctor     `python -m absp_torch doctor`: what this environment has
  bench      the PyTorch side of `absp bench` (CPU) and the GPU benchmark
"""

__version__ = "0.1.0"
# Raised whenever a request or response changes meaning; the TypeScript side refuses a mismatch.
PROTOCOL_VERSION = 1
