"""The next token, chosen exactly as the built-in engine's graph chooses it (qwen2.ts, nextTokenHead).

Greedy: argmax (the first index on ties). Sampling: the inverse CDF of softmax(logits / T) at one
uniform draw per row, the draw taken from the row's own seeded stream, optionally restricted to the
top-p nucleus (keep a token while the mass before it is below p). The log-probability reported with
each token is the model's at temperature 1. Computed in float32 whatever the model's dtype.
"""

import numpy as np
import torch


def choose(logits: torch.Tensor, temperature: float, top_p: float, uniforms: list[float] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [B, V] -> (tokens [B] int64, log-probs [B] float32)."""
    logits = logits.float()
    logprobs = torch.log_softmax(logits, dim=-1)
    vocab = logits.shape[1]
    if temperature <= 0:
        tokens = torch.argmax(logits, dim=1)
    else:
        # The built-in engine feeds 1/T and the draws as float32 tensors: round them the same way.
        inv_t = float(np.float32(1.0 / temperature))
        u = torch.tensor(np.asarray(uniforms, dtype=np.float32), device=logits.device)
        probs = torch.softmax(logits * inv_t, dim=-1)
        order = None
        if top_p < 1:
            probs, order = torch.sort(probs, dim=1, descending=True, stable=True)
            before = torch.cumsum(probs, dim=1) - probs
            probs = probs * (before < float(np.float32(top_p))).to(probs.dtype)
        cdf = torch.cumsum(probs, dim=1) / probs.sum(dim=1, keepdim=True)
        tokens = (cdf < u[:, None]).sum(dim=1).clamp(max=vocab - 1)
        if order is not None:
            tokens = order.gather(1, tokens[:, None])[:, 0]
    return tokens, logprobs.gather(1, tokens[:, None])[:, 0]
