#!/usr/bin/env python3
"""PyTorch side of the ABSP Lab engine benchmark.

Usage:  /usr/bin/python3 test/reference/bench_torch.py '<json spec>'     (or the spec on stdin)

Spec (every field optional):
  {"config": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
              "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
              "tie_word_embeddings": true, "rope_theta": 1000000.0, "head_dim": null},
   "model_dir": null,            # or read the shape from a HF model dir's config.json (weights stay random)
   "batch_sizes": [1, 4, 8], "prompt_len": 128, "new_tokens": 32, "threads": 2,
   "train_batch": 4, "train_seq_len": 128,
   "lora": {"r": 8, "alpha": 16, "targets": ["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]},
   "lr": 1e-4, "warmup": 1, "repeats": 3, "seed": 0,
   "phases": ["decode", "prefill", "score", "lora", "full"],   # also "decode_lora" (opt-in)
   "check": true, "blas_dir": null, "omp_wait_policy": "PASSIVE"}

Prints one JSON object (see README.md).  The model is random float32 of the given shape;
inference runs under torch.inference_mode() with a preallocated contiguous KV cache, fused
QKV and gate/up projections and GQA by broadcasting (no repeat_kv copies).  Training steps
are forward + backward + torch.optim.AdamW (foreach) on the LoRA tensors only (base frozen)
or on every parameter.
"""

import json
import math
import os
import resource
import statistics
import sys
import time

_SPEC = None
if __name__ == "__main__":
    # Parsed before torch is imported: BLAS/OpenMP read their thread counts at load time, and
    # torch.set_num_threads() does not reach a BLAS that the build only knows as "generic".
    _raw = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    _SPEC = json.loads(_raw) if _raw.strip() else {}
    if _SPEC.get("threads") is not None:
        for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
            os.environ[_v] = str(int(_SPEC["threads"]))
    # With a threaded BLAS next to torch's OpenMP pool, spinning OpenMP workers steal the cores
    # that the BLAS threads need (measured: 3-10x slower elementwise ops on a 2-core VM).
    if _SPEC.get("omp_wait_policy", "PASSIVE"):
        os.environ.setdefault("OMP_WAIT_POLICY", str(_SPEC.get("omp_wait_policy", "PASSIVE")))
    # blas_dir: a directory holding the libblas.so.3 to use (e.g. Debian's
    # /usr/lib/x86_64-linux-gnu/openblas-pthread); the process re-executes itself with it first
    # on LD_LIBRARY_PATH, since the BLAS is chosen when torch is loaded.
    _bd = _SPEC.get("blas_dir")
    if _bd and os.environ.get("ABSP_BENCH_BLAS_DIR") != _bd:
        if not os.path.isfile(os.path.join(_bd, "libblas.so.3")):
            sys.stderr.write(f"blas_dir {_bd!r} has no libblas.so.3\n")
            sys.exit(2)
        _env = dict(os.environ, ABSP_BENCH_BLAS_DIR=_bd)
        _env["LD_LIBRARY_PATH"] = _bd + (":" + _env["LD_LIBRARY_PATH"] if _env.get("LD_LIBRARY_PATH") else "")
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), json.dumps(_SPEC)], _env)

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import qwen2_torch as q  # noqa: E402

ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

DEFAULT_CONFIG = {  # Qwen2.5-0.5B's shape
    "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True,
    "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768,
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:
        return float("nan")


def blas_info() -> dict:
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                low = path.lower()
                if any(s in low for s in ("blas", "mkl_", "libmkl", "blis", "lapack")):
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    kind = "unknown"
    joined = " ".join(sorted(libs)).lower()
    if "openblas" in joined:
        kind = "openblas"
    elif "mkl" in joined:
        kind = "mkl"
    elif "blis" in joined:
        kind = "blis"
    elif "/blas/libblas" in joined:
        kind = "netlib-reference (slow: install Debian's libopenblas0-pthread for a fair comparison)"
    env = {v: os.environ[v] for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "OMP_WAIT_POLICY", "LD_LIBRARY_PATH")
           if v in os.environ}
    return {"kind": kind, "libraries": sorted(libs), "thread_env": env}


class FastQwen2:
    """Inference-optimised float32 Qwen2 (same math as qwen2_torch.Qwen2 with rope='hf')."""

    def __init__(self, cfg: q.Qwen2Config, params: dict):
        self.cfg = cfg
        H, KV, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.qdim, self.kvdim = H * D, KV * D
        self.layers = []
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}"
            a, m = f"{p}.self_attn", f"{p}.mlp"
            self.layers.append({
                "ln1": params[f"{p}.input_layernorm.weight"],
                "ln2": params[f"{p}.post_attention_layernorm.weight"],
                "wqkv": torch.cat([params[f"{a}.{n}_proj.weight"] for n in "qkv"]).contiguous(),
                "bqkv": torch.cat([params[f"{a}.{n}_proj.bias"] for n in "qkv"]).contiguous(),
                "wo": params[f"{a}.o_proj.weight"],
                "wgu": torch.cat([params[f"{m}.gate_proj.weight"], params[f"{m}.up_proj.weight"]]).contiguous(),
                "wd": params[f"{m}.down_proj.weight"],
            })
            for n in "qkv":
                del params[f"{a}.{n}_proj.weight"], params[f"{a}.{n}_proj.bias"]
            del params[f"{m}.gate_proj.weight"], params[f"{m}.up_proj.weight"]
        self.embed = params["model.embed_tokens.weight"]
        self.norm = params["model.norm.weight"]
        self.lm_head = params.get("lm_head.weight", self.embed)
        self.inv_freq = q.default_inv_freq(cfg.rope_theta, D)
        self._cos = self._sin = None
        self.slices = {n: o for n, (o, _) in cfg.linear_shapes().items()}

    def params(self):
        out = [self.embed, self.norm]
        if self.lm_head is not self.embed:
            out.append(self.lm_head)
        for L in self.layers:
            out += list(L.values())
        return out

    def rope_tables(self, n: int):
        if self._cos is None or self._cos.shape[0] < n:
            with torch.inference_mode(False):  # usable by both inference and training
                pos = torch.arange(max(n, 256), dtype=torch.float32)
                freqs = pos[:, None] * self.inv_freq[None, :]  # float32, as HF
                emb = torch.cat((freqs, freqs), dim=-1)
                self._cos, self._sin = emb.cos(), emb.sin()
        return self._cos, self._sin

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg.rms_norm_eps) * w

    @staticmethod
    def rope(x, cos, sin):  # x [B,T,n,D]; cos/sin [T,1,D]
        h = x.shape[-1] // 2
        rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
        return x * cos + rot * sin

    def new_cache(self, batch: int, max_len: int):
        c = self.cfg
        shape = (c.num_hidden_layers, batch, c.num_key_value_heads, max_len, c.head_dim)
        return {"k": torch.empty(shape), "v": torch.empty(shape), "len": 0}

    def _lora(self, y, x, li, names, lora):
        """Unmerged per-row LoRA (PEFT _mixed_batch_forward): y[rows] += (x A^T) B^T * scale."""
        off = 0
        for n in names:
            width = self.slices[n]
            for idx, mods in lora["groups"]:
                ab = mods.get((li, n))
                if ab is None:
                    continue
                xs = x if idx is None else x.index_select(0, idx)
                d = F.linear(F.linear(xs, ab[0]), ab[1]).mul_(lora["scale"])
                view = y[..., off:off + width]
                if idx is None:
                    view.add_(d)
                else:
                    view.index_add_(0, idx, d)
            off += width
        return y

    def forward(self, ids, cache, logits: str = "last", lora=None):
        """ids [B,T] appended at cache['len']; logits 'last' -> [B,V], 'all' -> [B,T,V].
        lora: {"scale": s, "groups": [(row index tensor or None, {(layer, name): (A, B)})]}."""
        c = self.cfg
        B, T = ids.shape
        H, KV, D = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        n_rep = H // KV
        s0 = cache["len"]
        S = s0 + T
        cos_t, sin_t = self.rope_tables(S)
        cos, sin = cos_t[s0:S, None, :], sin_t[s0:S, None, :]
        mask = None
        if T > 1:
            qi = torch.arange(s0, S)[:, None]
            mask = torch.zeros(T, S).masked_fill_(torch.arange(S)[None, :] > qi, torch.finfo(torch.float32).min)
        scale = D ** -0.5
        h = F.embedding(ids, self.embed)
        for li, L in enumerate(self.layers):
            x = self.rms(h, L["ln1"])
            qkv = F.linear(x, L["wqkv"], L["bqkv"])
            if lora is not None:
                self._lora(qkv, x, li, ("q_proj", "k_proj", "v_proj"), lora)
            qs = qkv[..., :self.qdim].view(B, T, H, D)
            ks = qkv[..., self.qdim:self.qdim + self.kvdim].view(B, T, KV, D)
            vs = qkv[..., self.qdim + self.kvdim:].view(B, T, KV, D)
            qs = self.rope(qs, cos, sin)
            ck, cv = cache["k"][li], cache["v"][li]
            ck[:, :, s0:S].copy_(self.rope(ks, cos, sin).transpose(1, 2))
            cv[:, :, s0:S].copy_(vs.transpose(1, 2))
            qg = qs.transpose(1, 2).reshape(B, KV, n_rep * T, D)
            scores = torch.matmul(qg, ck[:, :, :S].transpose(-1, -2))
            scores.mul_(scale)
            if mask is not None:
                scores.view(B, KV, n_rep, T, S).add_(mask)
            probs = torch.softmax(scores, dim=-1)
            o = torch.matmul(probs, cv[:, :, :S]).view(B, H, T, D).transpose(1, 2).reshape(B, T, H * D)
            ao = F.linear(o, L["wo"])
            if lora is not None:
                self._lora(ao, o, li, ("o_proj",), lora)
            h = h + ao
            x = self.rms(h, L["ln2"])
            gu = F.linear(x, L["wgu"])
            if lora is not None:
                self._lora(gu, x, li, ("gate_proj", "up_proj"), lora)
            g, u = gu.split(c.intermediate_size, dim=-1)
            act = F.silu(g)
            act.mul_(u)
            dn = F.linear(act, L["wd"])
            if lora is not None:
                self._lora(dn, act, li, ("down_proj",), lora)
            h = h + dn
        cache["len"] = S
        if logits == "last":
            return F.linear(self.rms(h[:, -1], self.norm), self.lm_head)
        return F.linear(self.rms(h, self.norm), self.lm_head)

    # -- training (autograd; no in-place ops on the graph) ----------------------

    def train_loss(self, ids, lora=None, scale=1.0, targets=()):
        c = self.cfg
        B, T = ids.shape
        H, KV, D = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        n_rep = H // KV
        cos_t, sin_t = self.rope_tables(T)
        cos, sin = cos_t[:T, None, :], sin_t[:T, None, :]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        h = F.embedding(ids, self.embed)

        def add_lora(x, y, li, names):
            if lora is None:
                return y
            parts = []
            for n in names:
                ab = lora.get((li, n))
                if ab is None:
                    return None
                parts.append(F.linear(F.linear(x, ab[0]), ab[1]) * scale)
            return y + torch.cat(parts, dim=-1) if len(parts) > 1 else y + parts[0]

        def lin(x, w, b, li, names, splits=None):
            y = F.linear(x, w, b)
            if lora is None or not any((li, n) in lora for n in names):
                return y
            if all((li, n) in lora for n in names):
                return add_lora(x, y, li, names)
            ys = list(y.split(splits, dim=-1))
            for j, n in enumerate(names):
                if (li, n) in lora:
                    ys[j] = add_lora(x, ys[j], li, [n])
            return torch.cat(ys, dim=-1)

        for li, L in enumerate(self.layers):
            x = self.rms(h, L["ln1"])
            qkv = lin(x, L["wqkv"], L["bqkv"], li, ["q_proj", "k_proj", "v_proj"],
                      [self.qdim, self.kvdim, self.kvdim])
            qs = qkv[..., :self.qdim].view(B, T, H, D)
            ks = qkv[..., self.qdim:self.qdim + self.kvdim].view(B, T, KV, D)
            vs = qkv[..., self.qdim + self.kvdim:].view(B, T, KV, D)
            qs = self.rope(qs, cos, sin).transpose(1, 2).reshape(B, KV, n_rep * T, D)
            ks = self.rope(ks, cos, sin).transpose(1, 2)
            scores = torch.matmul(qs, ks.transpose(-1, -2)).view(B, KV, n_rep, T, T) * (D ** -0.5)
            scores = scores.masked_fill(~causal, torch.finfo(torch.float32).min)
            probs = torch.softmax(scores, dim=-1).view(B, KV, n_rep * T, T)
            o = torch.matmul(probs, vs.transpose(1, 2)).view(B, H, T, D).transpose(1, 2).reshape(B, T, H * D)
            h = h + lin(o, L["wo"], None, li, ["o_proj"])
            x = self.rms(h, L["ln2"])
            gu = lin(x, L["wgu"], None, li, ["gate_proj", "up_proj"], [c.intermediate_size] * 2)
            g, u = gu.split(c.intermediate_size, dim=-1)
            h = h + lin(F.silu(g) * u, L["wd"], None, li, ["down_proj"])
        logits = F.linear(self.rms(h[:, :-1], self.norm), self.lm_head)
        return F.cross_entropy(logits.reshape(-1, c.vocab_size), ids[:, 1:].reshape(-1))


def random_params(cfg: q.Qwen2Config, seed: int, std: float = 0.02) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, s in cfg.weight_shapes().items():
        if n.endswith("norm.weight"):
            out[n] = torch.ones(s)
        else:
            out[n] = torch.empty(s).normal_(0.0, std, generator=g)
    return out


def _adapter_mods(ad) -> dict:
    """{(layer, short name): (A, B)} in float32 from a qwen2_torch.LoraAdapter."""
    out = {}
    for name, m in ad.modules.items():
        parts = name.split(".")
        out[(int(parts[2]), parts[-1])] = (ad.tensors[m.key_a].float(), ad.tensors[m.key_b].float())
    return out


def timed(fn, warmup: int, repeats: int):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def self_check() -> bool:
    """The fast path computes what the reference computes (tiny GQA model, float32)."""
    cfg = q.Qwen2Config.from_dict({"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 40,
                                   "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                                   "vocab_size": 50, "rope_theta": 10000.0}, validate_type=True)
    params = q.random_params(cfg, seed=1, std=0.2, dtype=torch.float32)
    ref = q.Qwen2(cfg, dict(params), torch.float32)
    fast = FastQwen2(cfg, dict(params))
    ids = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        cache = fast.new_cache(2, 9)
        got = [fast.forward(ids[:, :6], cache)]
        for t in range(6, 9):
            got.append(fast.forward(ids[:, t:t + 1], cache))
        mask = torch.ones(2, 9, dtype=torch.long)
        pos = q.position_ids_from_mask(mask)
        h = ref.forward(ids, pos, mask)
        exp = ref.logits(h)[:, 5:]
    ok = float((torch.stack(got, 1) - exp).abs().max()) < 1e-4
    # per-row LoRA decode equals the reference's LoraBatch
    ads = [q.make_adapter(cfg, r=4, alpha=8, targets=ALL_TARGETS, seed=s, std=0.3) for s in (1, 2)]
    lora = {"scale": 2.0, "groups": [(torch.tensor([0]), _adapter_mods(ads[0])),
                                     (torch.tensor([1]), _adapter_mods(ads[1]))]}
    ads32 = [a.with_tensors({k: t.float() for k, t in a.tensors.items()}) for a in ads]
    with torch.inference_mode():
        cache = fast.new_cache(2, 9)
        got = [fast.forward(ids[:, :6], cache, lora=lora)]
        for t in range(6, 9):
            got.append(fast.forward(ids[:, t:t + 1], cache, lora=lora))
        lb = q.LoraBatch(ads32, [0, 1])
        exp = ref.logits(ref.forward(ids, pos, mask, lora=lb), lb)[:, 5:]
    ok = ok and float((torch.stack(got, 1) - exp).abs().max()) < 1e-4
    # training loss equals the reference NLL too
    lp = q.batch_logprobs(ref, q.make_batch([{"ids": r} for r in ids.tolist()], 0, 50), None)
    loss = fast.train_loss(ids)
    ok = ok and abs(float(loss) + float(lp[:, 1:].mean())) < 1e-4
    return ok


def main(spec: dict) -> int:
    threads = int(spec.get("threads", torch.get_num_threads()))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    if spec.get("model_dir"):
        with open(os.path.join(spec["model_dir"], "config.json")) as f:
            conf = json.load(f)
    else:
        conf = dict(DEFAULT_CONFIG, **spec.get("config", {}))
        conf.setdefault("model_type", "qwen2")
    cfg = q.Qwen2Config.from_dict(conf)
    batch_sizes = spec.get("batch_sizes", [1, 4, 8])
    prompt_len = int(spec.get("prompt_len", 128))
    new_tokens = int(spec.get("new_tokens", 32))
    warmup = int(spec.get("warmup", 1))
    repeats = int(spec.get("repeats", 3))
    seed = int(spec.get("seed", 0))
    phases = spec.get("phases", ["decode", "prefill", "score", "lora", "full"])
    lcfg = spec.get("lora", {})
    r, alpha = int(lcfg.get("r", 8)), float(lcfg.get("alpha", 16))
    targets = lcfg.get("targets", ALL_TARGETS)
    train_batch = int(spec.get("train_batch", max(batch_sizes)))
    train_len = int(spec.get("train_seq_len", prompt_len))
    lr = float(spec.get("lr", 1e-4))

    res = {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_info(),
           "mkldnn": torch.backends.mkldnn.is_available(),
           "config": {k: getattr(cfg, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                   "num_attention_heads", "num_key_value_heads", "head_dim",
                                                   "vocab_size", "tie_word_embeddings")},
           "prompt_len": prompt_len, "new_tokens": new_tokens, "repeats": repeats, "rss_after_mb": {}}
    if spec.get("check", True):
        res["checks"] = {"decode_matches_reference": self_check()}
    res["rss_after_mb"]["start"] = current_rss_mb()

    model = FastQwen2(cfg, random_params(cfg, seed))
    res["params_m"] = sum(p.numel() for p in model.params()) / 1e6
    res["rss_after_mb"]["model"] = current_rss_mb()
    gen = torch.Generator().manual_seed(seed + 1)

    bench_lora = None
    if "decode_lora" in phases:
        # two adapters, rows alternating between them (the ABSP attacker/defender pattern)
        g = torch.Generator().manual_seed(seed + 3)
        shapes = cfg.linear_shapes()
        mods = [{}, {}]
        for j in range(2):
            for li in range(cfg.num_hidden_layers):
                for n in targets:
                    out_f, in_f = shapes[n]
                    mods[j][(li, n)] = (torch.empty(r, in_f).normal_(0, 0.02, generator=g),
                                        torch.empty(out_f, r).normal_(0, 0.02, generator=g))
        bench_lora = mods
    if any(p in phases for p in ("decode", "prefill", "score", "decode_lora")):
        res["decode"], res["prefill"], res["score"], res["decode_lora"] = [], [], [], []
        for b in batch_sizes:
            ids = torch.randint(0, cfg.vocab_size, (b, prompt_len), generator=gen)
            cache = model.new_cache(b, prompt_len + new_tokens)
            with torch.inference_mode():
                if "prefill" in phases:
                    def prefill():
                        cache["len"] = 0
                        model.forward(ids, cache, "last")
                    t, _ = timed(prefill, warmup, repeats)
                    res["prefill"].append({"batch": b, "tokens_per_s": b * prompt_len / t, "ms": t * 1e3})
                if "score" in phases:
                    def score():
                        cache["len"] = 0
                        lg = model.forward(ids, cache, "all")
                        torch.log_softmax(lg[:, :-1], -1).gather(-1, ids[:, 1:, None])
                    t, _ = timed(score, warmup, repeats)
                    res["score"].append({"batch": b, "tokens_per_s": b * prompt_len / t, "ms": t * 1e3})
                if "decode" in phases:
                    def decode():
                        cache["len"] = 0
                        tok = model.forward(ids, cache, "last").argmax(-1)
                        t0 = time.perf_counter()
                        for _ in range(new_tokens):
                            tok = model.forward(tok[:, None], cache, "last").argmax(-1)
                        return time.perf_counter() - t0
                    for _ in range(warmup):
                        decode()
                    ts = [decode() for _ in range(repeats)]
                    t = statistics.median(ts)
                    res["decode"].append({"batch": b, "tokens_per_s": b * new_tokens / t,
                                          "ms_per_step": t / max(1, new_tokens) * 1e3,
                                          "context": prompt_len + new_tokens})
                if "decode_lora" in phases:
                    rows = torch.arange(b)
                    groups = [(rows[rows % 2 == j] if b > 1 else None, bench_lora[j]) for j in range(min(2, b))]
                    lora_spec = {"scale": alpha / r, "groups": groups}

                    def decode_lora():
                        cache["len"] = 0
                        tok = model.forward(ids, cache, "last", lora_spec).argmax(-1)
                        t0 = time.perf_counter()
                        for _ in range(new_tokens):
                            tok = model.forward(tok[:, None], cache, "last", lora_spec).argmax(-1)
                        return time.perf_counter() - t0
                    for _ in range(warmup):
                        decode_lora()
                    ts = [decode_lora() for _ in range(repeats)]
                    t = statistics.median(ts)
                    res["decode_lora"].append({"batch": b, "adapters": min(2, b), "tokens_per_s": b * new_tokens / t,
                                               "ms_per_step": t / max(1, new_tokens) * 1e3,
                                               "context": prompt_len + new_tokens})
            del cache
        res["rss_after_mb"]["inference"] = current_rss_mb()

    ids = torch.randint(0, cfg.vocab_size, (train_batch, train_len), generator=gen)
    if "lora" in phases:
        shapes = cfg.linear_shapes()
        scale = alpha / r
        lora, lparams = {}, []
        g = torch.Generator().manual_seed(seed + 2)
        for li in range(cfg.num_hidden_layers):
            for n in targets:
                out_f, in_f = shapes[n]
                A = ((torch.rand(r, in_f, generator=g) * 2 - 1) / math.sqrt(in_f)).requires_grad_()
                B = torch.zeros(out_f, r).requires_grad_()
                lora[(li, n)] = (A, B)
                lparams += [A, B]
        for p in model.params():
            p.requires_grad_(False)
        opt = torch.optim.AdamW(lparams, lr=lr, foreach=True)

        def lora_step():
            opt.zero_grad(set_to_none=True)
            loss = model.train_loss(ids, lora, scale)
            loss.backward()
            opt.step()
        t, _ = timed(lora_step, warmup, repeats)
        res["lora_step"] = {"batch": train_batch, "seq_len": train_len, "tokens_per_s": train_batch * train_len / t,
                            "ms_per_step": t * 1e3, "trainable_params": sum(p.numel() for p in lparams),
                            "r": r, "targets": targets}
        del opt, lora, lparams
        res["rss_after_mb"]["lora"] = current_rss_mb()
    if "full" in phases:
        ps = model.params()
        for p in ps:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(ps, lr=lr, foreach=True)

        def full_step():
            opt.zero_grad(set_to_none=True)
            loss = model.train_loss(ids)
            loss.backward()
            opt.step()
        t, _ = timed(full_step, warmup, repeats)
        res["full_step"] = {"batch": train_batch, "seq_len": train_len, "tokens_per_s": train_batch * train_len / t,
                            "ms_per_step": t * 1e3, "trainable_params": sum(p.numel() for p in ps)}
        res["rss_after_mb"]["full"] = current_rss_mb()
    res["peak_rss_mb"] = max([rss_mb()] + list(res["rss_after_mb"].values()))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(_SPEC))
