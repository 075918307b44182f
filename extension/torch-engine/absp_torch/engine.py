"""The engine: one frozen base model, named policies on it, and the batched operations the trainer
drives (extension/engine/policy-engine.ts describes each; this follows the built-in engine's conventions).

- A LoRA policy is a named PEFT adapter on the one base (no second copy of the model). Rows of one
  call may name different adapters: they run in the same passes through PEFT's `adapter_names`,
  with `"__base__"` for the frozen base. With no adapter in a call, `disable_adapter()` gives the base.
- A full policy (shared-full mode) is a model copy of its own; the KL anchor stays the original base.
- Under torchrun with FSDP (distributed.py), the base and full policies are sharded; LoRA adapters
  stay whole on every rank. Generation and scoring run inside `gathered` (the server wraps each
  data-parallel call), training runs sharded.
- Log-probs: result[r][i] = log p(ids[i] | ids[<i]) under row r's policy, result[r][0] = None.
- Training: each policy's rows go through forward and backward with its adapter active; the loss is
  Σ w·ℓ (the trainer's weights are mask and normaliser), so micro-batches and ranks just add up.
"""

import inspect
import math
import os
import shutil
import tempfile
from contextlib import contextmanager, nullcontext

import torch

from . import adapters as ad
from .checkpoint import DTYPES, load_model, read_config
from .distributed import FullTensors, fully_shard_available, full_tensor, gathered, local_numel, shard
from .optim import PolicyOptimizer, settings_config
from .protocol import CheckpointError, EngineError, RequestError, float_list
from .rng import Rng
from .sampling import choose

BASE = "__base__"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


class Policy:
    def __init__(self, kind: str, model=None):
        self.kind = kind
        self.model = model  # full policies only
        self.optimizer: PolicyOptimizer | None = None
        self.version = 0
        self._fingerprint: tuple[int, str] | None = None


def chunk_rows(rows: list, budget: int, length=lambda r: len(r["ids"])) -> list[list]:
    """Consecutive rows in groups whose padded size (rows × longest) stays within the token budget."""
    out, current, width = [], [], 0
    for r in rows:
        w = max(width, length(r))
        if current and w * (len(current) + 1) > budget:
            out.append(current)
            current, width = [], 0
        current.append(r)
        width = max(width, length(r))
    if current:
        out.append(current)
    return out


def left_pad(seqs: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids, 1/0 attention mask and positions counting real tokens only, for left-padded rows."""
    width = max(1, max(len(s) for s in seqs))
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    pos = torch.ones((len(seqs), width), dtype=torch.long)
    for b, s in enumerate(seqs):
        pad = width - len(s)
        if s:
            ids[b, pad:] = torch.tensor(s, dtype=torch.long)
            mask[b, pad:] = 1
            pos[b, pad:] = torch.arange(len(s))
    return ids.to(device), mask.to(device), pos.to(device)


def pg_token_loss(lp, old, ref, adv, clip_eps: float, k1: float, k3: float):
    """−min(ρA, clip(ρ, 1−ε, 1+ε)A) + β₁·k1 + β₃·k3, as losses.ts."""
    ratio = torch.exp(lp - old)
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    pg = -torch.minimum(ratio * adv, clipped * adv)
    log_ref = ref - lp
    return pg + k1 * (lp - ref) + k3 * (torch.exp(log_ref) - log_ref - 1)


class TorchEngine:
    def __init__(self, model_dir: str, device: str = "cpu", dtype: str = "float32", *, threads: int | None = None,
                 attn_implementation: str | None = None, micro_batch_tokens: int = 8192,
                 gradient_checkpointing: bool = False, dist=None, model=None, fsdp: bool = False):
        if fsdp:
            if dist is None or dist.world < 2:
                raise RequestError("fsdp shards the weights across processes and needs 2 or more: start the engine under torchrun "
                                   '("engine": {"nproc": N, "fsdp": true} with N >= 2; by hand: torchrun --nproc_per_node N -m absp_torch serve, '
                                   'then open with "fsdp": true)')
            why = fully_shard_available()
            if why:
                raise RequestError(f"fsdp: {why}; run without fsdp (every process then holds the whole base) or install a newer torch")
        self.fsdp = bool(fsdp)
        if threads:
            torch.set_num_threads(threads)
        self.model_dir = os.path.abspath(model_dir)
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RequestError(f"device {device!r}: this PyTorch has no CUDA device (torch {torch.__version__}); use \"device\": \"cpu\"")
        self.dtype = dtype
        self.attn = attn_implementation
        self.micro_batch_tokens = micro_batch_tokens
        self.gradient_checkpointing = gradient_checkpointing
        self.dist = dist
        if model is None:
            self.config = read_config(self.model_dir)
            self.base = load_model(self.model_dir, dtype, str(self.device), attn_implementation)
        else:
            # An in-memory model (the benchmarks' random weights): frozen and in eval mode here too.
            self.config = model.config.to_dict()
            self.base = model.eval()
            for p in self.base.parameters():
                p.requires_grad_(False)
        self.peft = None  # the PeftModel wrapping self.base once a LoRA policy exists
        self.policies: dict[str, Policy] = {}
        self._ddp: dict[str, torch.nn.Module] = {}
        c = self.base.config
        self.vocab_size = int(c.vocab_size)
        self.max_positions = int(getattr(c, "max_position_embeddings", 1 << 30))
        self.base_parameters = sum(p.numel() for p in self.base.parameters())
        # transformers renamed past_key_values to cache (5.x); speak whichever this release has.
        self.cache_kw = "cache" if "cache" in inspect.signature(type(self.base).forward).parameters else "past_key_values"
        self._in_gathered = False
        if self.fsdp:
            shard(self.base, dist.mesh)

    # ------------------------------------------------------------------------------------------
    # what the engine is

    def info(self) -> dict:
        return {
            "name": "torch",
            "model": self.model_dir,
            "vocabSize": self.vocab_size,
            "maxPositions": self.max_positions,
            "baseParameters": self.base_parameters,
            "architecture": type(self.base).__name__,
            "device": str(self.device),
            "dtype": self.dtype,
            "worldSize": self.dist.world if self.dist else 1,
            "fsdp": self.fsdp,
            # What this rank holds of the base between calls: all of it, or its shard under FSDP.
            "baseParametersHeld": sum(local_numel(p) for p in self.base.parameters()),
        }

    # ------------------------------------------------------------------------------------------
    # policies

    def _policy(self, name) -> Policy:
        if not isinstance(name, str) or name not in self.policies:
            raise RequestError(f"no policy named {name!r} (policies: {', '.join(self.policies) or 'none'})")
        return self.policies[name]

    def _seeded(self, seed: int):
        devices = [self.device] if self.device.type == "cuda" else []
        ctx = torch.random.fork_rng(devices=devices)
        ctx.__enter__()
        torch.manual_seed(seed)
        return ctx

    def create_policy(self, name: str, spec: dict) -> dict:
        kind = spec.get("kind", "lora")
        if spec.get("init"):
            return self.load_policy(name, spec["init"], kind)
        self.drop_policy(name)
        if kind == "lora":
            targets = spec.get("targets") or ["q_proj", "k_proj", "v_proj", "o_proj"]
            bad = [t for t in targets if t not in ad.LORA_MODULES]
            if bad:
                raise RequestError(f"LoRA target {bad[0]!r} is not a linear layer of this model (targets: {', '.join(ad.LORA_MODULES)})")
            rank = int(spec.get("rank", 8))
            if rank <= 0:
                raise RequestError(f"LoRA rank must be a positive integer, got {rank}")
            config = ad.lora_config(rank, float(spec.get("alpha", 16)), targets)
            ctx = self._seeded(int(spec.get("seed", 0)))
            try:
                if self.peft is None:
                    from peft import get_peft_model

                    self.peft = get_peft_model(self.base, config, adapter_name=name)
                else:
                    self.peft.add_adapter(name, config)
            finally:
                ctx.__exit__(None, None, None)
            self._freeze_adapters()
            self.policies[name] = Policy("lora")
        elif kind == "full":
            self.policies[name] = Policy("full", self._full_copy(self.model_dir))
        else:
            raise RequestError(f"policy kind must be lora or full, got {kind!r}")
        return self._describe(name)

    def _full_copy(self, model_dir: str):
        if model_dir == self.model_dir and not os.path.isdir(model_dir):
            import copy

            if self.peft is not None:
                raise RequestError("a full copy of an in-memory model that has adapters is not supported")
            return copy.deepcopy(self.base)
        model = load_model(model_dir, self.dtype, str(self.device), self.attn)
        if model.config.hidden_size != self.base.config.hidden_size or model.config.vocab_size != self.vocab_size:
            raise CheckpointError(model_dir, f"its shape does not match the base model {self.model_dir}")
        if self.fsdp:
            shard(model, self.dist.mesh)
        return model

    def _freeze_adapters(self) -> None:
        # Inference mode between steps (PEFT's per-row adapter_names refuses training mode); there
        # is no dropout in these models, so train and eval mode compute the same.
        self.peft.eval()
        for n, p in self.peft.named_parameters():
            if "lora_" in n:
                p.requires_grad_(False)

    def load_policy(self, name: str, path: str, kind: str) -> dict:
        self.drop_policy(name)
        path = os.path.abspath(path)
        if kind == "lora":
            # Checked and resolved first (adapters.read_adapter): PEFT gets exact module names and
            # ranks, never the file's patterns, and allocates only what the file's header holds.
            config, weights_file = ad.read_adapter(path, ad.linear_modules(self.base))
            try:
                from peft import get_peft_model, set_peft_model_state_dict
                from safetensors.torch import load_file

                weights = load_file(weights_file)
                if self.peft is None:
                    self.peft = get_peft_model(self.base, config, adapter_name=name)
                else:
                    self.peft.add_adapter(name, config)
                loaded = set_peft_model_state_dict(self.peft, weights, adapter_name=name)
                missing = [k for k in loaded.missing_keys if "lora_" in k and f".{name}." in k]
                if missing:
                    raise CheckpointError(weights_file, f"does not set {missing[0]}")
            except CheckpointError:
                if self.peft is not None and name in self.peft.peft_config:
                    self.peft.delete_adapter(name)
                raise
            except (ValueError, KeyError, RuntimeError, OSError, TypeError) as e:
                if self.peft is not None and name in self.peft.peft_config:
                    self.peft.delete_adapter(name)
                raise CheckpointError(path, f"does not load as a PEFT LoRA adapter of {self.model_dir}: {str(e).splitlines()[0][:400]}") from None
            self._freeze_adapters()
            self.policies[name] = Policy("lora")
        elif kind == "full":
            self.policies[name] = Policy("full", self._full_copy(path))
        else:
            raise RequestError(f"policy kind must be lora or full, got {kind!r}")
        return self._describe(name)

    def _describe(self, name: str) -> dict:
        return {"parameters": self.policy_parameters(name), "fingerprint": self.fingerprint(name)}

    def drop_policy(self, name: str) -> None:
        p = self.policies.pop(name, None)
        self._ddp.pop(name, None)
        if p is not None and p.kind == "lora":
            self.peft.delete_adapter(name)
            remaining = [n for n, q in self.policies.items() if q.kind == "lora"]
            if remaining:
                self.peft.set_adapter(remaining[0])
            self._freeze_adapters()

    def _lora_params(self, name: str) -> dict:
        """The adapter's tensors under the built-in engine's optimiser names (`3.q_proj.A`)."""
        marker = f".{name}.weight"
        return {ad.optimizer_name(n): p for n, p in self.peft.named_parameters() if "lora_" in n and n.endswith(marker)}

    def _params(self, name: str) -> dict:
        p = self._policy(name)
        if p.kind == "lora":
            return self._lora_params(name)
        return dict(p.model.named_parameters())

    def policy_parameters(self, name: str) -> int:
        return sum(t.numel() for t in self._params(name).values())

    def _weights_for_fingerprint(self, name: str):
        p = self._policy(name)
        if p.kind == "lora":
            from peft import get_peft_model_state_dict

            return get_peft_model_state_dict(self.peft, adapter_name=name)
        # Under FSDP each tensor is gathered whole as the hash reads it (every rank, same order).
        return FullTensors(dict(p.model.named_parameters()))

    def fingerprint(self, name: str) -> str:
        """The hash of the policy's weights as they are now, cached per version: weights change only
        by a training step (which counts a version) or by loading a new policy."""
        p = self._policy(name)
        if p._fingerprint and p._fingerprint[0] == p.version:
            return p._fingerprint[1]
        if self._in_gathered:
            # Hashing reads the state dict, which makes FSDP reshard in the middle of a gathered call.
            raise EngineError(f"internal: the fingerprint of policy {name} was not computed before a gathered call")
        fp = ad.fingerprint(self._weights_for_fingerprint(name))
        p._fingerprint = (p.version, fp)
        return fp

    @property
    def _writer(self) -> bool:
        """The one process that writes files (rank 0 under torchrun)."""
        return self.dist is None or self.dist.rank == 0

    def save_policy(self, name: str, out_dir: str) -> dict:
        """Every rank calls it (a sharded model is gathered for rank 0 to write)."""
        p = self._policy(name)
        out_dir = os.path.abspath(out_dir)
        if p.kind == "lora":
            if not self._writer:
                return {"fingerprint": self.fingerprint(name)}
            return {"fingerprint": ad.write_adapter(self.peft, name, out_dir)}
        state = None
        if self.fsdp:
            state = {}
            for key, t in p.model.state_dict().items():
                whole = full_tensor(t.detach())
                if self._writer:
                    state[key] = whole.cpu()
                del whole
        if not self._writer:
            return {"fingerprint": self.fingerprint(name)}
        os.makedirs(out_dir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".saving-", dir=out_dir)
        try:
            p.model.save_pretrained(tmp, safe_serialization=True, state_dict=state)
            for f in TOKENIZER_FILES:
                src = os.path.join(self.model_dir, f)
                if os.path.isfile(src):
                    shutil.copyfile(src, os.path.join(tmp, f))
            for f in sorted(os.listdir(tmp)):
                os.replace(os.path.join(tmp, f), os.path.join(out_dir, f))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return {"fingerprint": self.fingerprint(name)}

    # ------------------------------------------------------------------------------------------
    # batched passes

    def _check_ids(self, ids, where: str, allow_empty: bool = True) -> list[int]:
        if not isinstance(ids, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
            raise RequestError(f"{where}: must be a list of integer token ids")
        if not ids and not allow_empty:
            raise RequestError(f"{where}: empty sequence")
        for x in ids:
            if x < 0 or x >= self.vocab_size:
                raise RequestError(f"{where}: unknown token id {x} (the vocabulary has ids 0..{self.vocab_size - 1})")
        return ids

    def _groups(self, rows: list[dict]) -> list[tuple[object, list[int], list[str] | None]]:
        """Rows split by the model that runs them: the base with every LoRA policy of the call in one
        batch (PEFT's per-row adapter names), and each full policy alone."""
        shared: list[int] = []
        names: list[str] = []
        full: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            policy = r.get("policy")
            if policy is None:
                shared.append(i)
                names.append(BASE)
                continue
            p = self._policy(policy)
            if p.kind == "full":
                full.setdefault(policy, []).append(i)
            else:
                shared.append(i)
                names.append(policy)
        groups = []
        if shared:
            groups.append(("shared", shared, names))
        for policy, members in full.items():
            groups.append((policy, members, None))
        return groups

    def _runner(self, group: str, names: list[str] | None):
        """A forward function for a group, and the context it runs in."""
        if group != "shared":
            model = self.policies[group].model
            return (lambda **kw: model(**kw)), nullcontext()
        if self.peft is None:
            return (lambda **kw: self.base(**kw)), nullcontext()
        if all(n == BASE for n in names):
            return (lambda **kw: self.peft(**kw)), self.peft.disable_adapter()
        return (lambda **kw: self.peft(adapter_names=names, **kw)), nullcontext()

    def gathered(self, rows: list[dict]):
        """Under FSDP, the whole weights of the models these rows use, on every rank, for one
        data-parallel call (distributed.gathered); otherwise nothing to do. Every rank calls it
        with the same rows."""
        if not self.fsdp:
            return nullcontext()
        models, base = [], False
        for r in rows:
            policy = r.get("policy") if isinstance(r, dict) else None
            p = self.policies.get(policy) if isinstance(policy, str) else None
            if p is not None and p.kind == "full":
                if all(m is not p.model for m in models):
                    models.append(p.model)
            elif policy is None or p is not None:
                base = True
        # In the rows' order, the same on every rank (hashing a sharded policy gathers it).
        for policy in dict.fromkeys(r.get("policy") for r in rows if isinstance(r, dict) and isinstance(r.get("policy"), str)):
            if policy in self.policies:
                self.fingerprint(policy)  # cached now, read inside the call
        return self._gathered_block(([self.base] if base else []) + models)

    @contextmanager
    def _gathered_block(self, models: list):
        with gathered(models):
            self._in_gathered = True
            try:
                yield
            finally:
                self._in_gathered = False

    @torch.no_grad()
    def logprobs(self, rows: list[dict]) -> list[list]:
        for i, r in enumerate(rows):
            self._check_ids(r.get("ids"), f"row {i}")
        out: list = [None] * len(rows)
        for group, members, names in self._groups(rows):
            width = max(1, max(len(rows[m]["ids"]) for m in members))
            # Bound the float32 logits (plus their log-softmax) of a chunk near 512 MiB.
            per_row = width * self.vocab_size * 4 * 2
            chunk = max(1, (512 << 20) // per_row)
            for start in range(0, len(members), chunk):
                part = members[start:start + chunk]
                part_names = names[start:start + chunk] if names else None
                for m, lp in zip(part, self._score([rows[m]["ids"] for m in part], group, part_names)):
                    out[m] = lp
        return out

    def _token_logprobs(self, forward, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S-1] log-probs of each next token (float32) and the padded ids."""
        ids, mask, pos = left_pad(seqs, self.device)
        logits = forward(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
        lp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(2, ids[:, 1:, None])[..., 0]
        return lp, ids

    def _score(self, seqs: list[list[int]], group: str, names) -> list[list]:
        forward, ctx = self._runner(group, names)
        with ctx:
            lp, ids = self._token_logprobs(forward, seqs)
        lp = lp.cpu().tolist()
        width = ids.shape[1]
        result = []
        for b, s in enumerate(seqs):
            pad = width - len(s)
            result.append([None] + [lp[b][pad + i - 1] for i in range(1, len(s))])
        return result

    @torch.no_grad()
    def next_token_logprobs(self, rows: list[dict], candidates: list[int]) -> list[list[float]]:
        for i, r in enumerate(rows):
            self._check_ids(r.get("ids"), f"row {i}", allow_empty=False)
        self._check_ids(candidates, "candidates")
        cand = torch.tensor(candidates, dtype=torch.long, device=self.device)
        out: list = [None] * len(rows)
        for group, members, names in self._groups(rows):
            for start in range(0, len(members), 256):
                part = members[start:start + 256]
                forward, ctx = self._runner(group, names[start:start + 256] if names else None)
                with ctx:
                    ids, mask, pos = left_pad([rows[m]["ids"] for m in part], self.device)
                    logits = forward(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, logits_to_keep=1).logits[:, -1].float()
                lp = torch.log_softmax(logits, dim=-1)[:, cand].cpu().tolist()
                for m, row in zip(part, lp):
                    out[m] = row
        return out

    @torch.no_grad()
    def generate(self, requests: list[dict], settings: dict) -> list[dict]:
        for i, r in enumerate(requests):
            self._check_ids(r.get("prompt"), f"row {i} prompt", allow_empty=False)
        max_new = int(settings.get("maxNewTokens", 0))
        temperature = float(settings.get("temperature", 0))
        top_p = float(settings.get("topP", 1))
        stop = set(self._check_ids(settings.get("stopTokens", []), "stopTokens"))
        out: list = [None] * len(requests)
        fingerprints = {}
        for group, members, names in self._groups(requests):
            rows = [requests[m] for m in members]
            gens = self._generate_group(group, names, rows, max_new, temperature, top_p, stop)
            for m, g in zip(members, gens):
                policy = requests[m].get("policy")
                if policy is not None and policy not in fingerprints:
                    fingerprints[policy] = self.fingerprint(policy)
                g["fingerprint"] = fingerprints.get(policy) if policy is not None else None
                out[m] = g
        return out

    def _generate_group(self, group, names, rows, max_new, temperature, top_p, stop) -> list[dict]:
        B = len(rows)
        prompts = [r["prompt"] for r in rows]
        longest = max(len(p) for p in prompts)
        steps = max(0, min(max_new, self.max_positions - longest))
        results = [{"tokens": [], "logprobs": [], "finish": "length"} for _ in rows]
        if steps == 0:
            return results
        rngs = [Rng(int(r.get("seed", 0)), 1) for r in rows]
        forward, ctx = self._runner(group, names)
        ids, mask, pos = left_pad(prompts, self.device)
        last = torch.tensor([len(p) - 1 for p in prompts], device=self.device)
        done = [False] * B
        past = None
        with ctx:
            for step in range(steps):
                o = forward(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1, **{self.cache_kw: past})
                past = getattr(o, self.cache_kw)
                # Every row draws each step, finished or not, so its stream stays aligned.
                uniforms = [g.uniform() for g in rngs] if temperature > 0 else None
                tokens, lps = choose(o.logits[:, -1], temperature, top_p, uniforms)
                tokens_l, lps_l = tokens.cpu().tolist(), lps.cpu().tolist()
                nxt = torch.zeros((B, 1), dtype=torch.long)
                for b in range(B):
                    if done[b]:
                        continue
                    results[b]["tokens"].append(tokens_l[b])
                    results[b]["logprobs"].append(lps_l[b])
                    nxt[b, 0] = tokens_l[b]
                    if tokens_l[b] in stop:
                        done[b] = True
                        results[b]["finish"] = "stop"
                if all(done) or step == steps - 1:
                    break
                ids = nxt.to(self.device)
                mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=self.device)], dim=1)
                last = last + 1
                pos = last[:, None]
        return results

    # ------------------------------------------------------------------------------------------
    # training

    def _train_forward(self, name: str):
        """The forward of a policy in training, with its adapter the only trainable one."""
        p = self._policy(name)
        if p.kind == "lora":
            self.peft.set_adapter(name)  # marks this adapter's tensors trainable, the others not
            module = self.peft
        else:
            for t in p.model.parameters():
                t.requires_grad_(True)
            module = p.model
        if self.gradient_checkpointing:
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if p.kind == "lora":
                self.base.enable_input_require_grads()
        if self.dist is not None and self.dist.world > 1 and not self.fsdp:
            if name not in self._ddp:
                self._ddp[name] = self.dist.wrap(module)
            return self._ddp[name]
        return module

    def train_step(self, samples: list[dict], settings: dict) -> dict:
        objective = settings.get("loss", "pg")
        if objective not in ("pg", "nll"):
            raise RequestError(f"train_step: loss must be pg or nll, got {objective!r}")
        clip_eps = float(settings.get("clipEps", 0.2))
        k1 = float(settings.get("klK1", 0.0))
        k3 = float(settings.get("klK3", 0.0))
        optimizers = settings.get("optimizers") or {}
        by_policy: dict[str, list[dict]] = {}
        tokens = 0
        for i, s in enumerate(samples):
            ids = self._check_ids(s.get("ids"), f"sample {i}")
            self._policy(s.get("policy"))
            for key in ("weights",) if objective == "nll" else ("weights", "advantages", "oldLogprobs", "refLogprobs"):
                v = s.get(key)
                if not isinstance(v, list) or len(v) != len(ids):
                    raise RequestError(f"sample {i}: {key} must have one number per token of ids ({len(ids)})")
                s[key] = float_list(v, f"sample {i} {key}")  # "NaN"/"Infinity" travel as strings
            by_policy.setdefault(s["policy"], []).append(s)
            tokens += sum(1 for w in s["weights"] if w != 0)
        for name in by_policy:
            if name not in optimizers:
                raise RequestError(f"no optimiser settings for policy {name}")
        report = {"policies": {}, "tokens": tokens}
        for name, rows in by_policy.items():
            report["policies"][name] = self._train_policy(name, rows, optimizers[name], clip_eps, k1, k3, objective)
        return report

    def _local_rows(self, rows: list[dict]) -> list[list[dict]]:
        """This rank's micro-batches: rows dealt round-robin across ranks, every rank doing the same
        number of passes (a rank short of rows repeats a row with zero weight), as DDP requires."""
        if self.dist is None or self.dist.world == 1:
            return chunk_rows(rows, self.micro_batch_tokens)
        mine = rows[self.dist.rank::self.dist.world]
        micro = chunk_rows(mine, self.micro_batch_tokens) if mine else []
        count = self.dist.max_int(len(micro))
        filler = {**rows[0], "weights": [0.0] * len(rows[0]["ids"])}  # same shape, contributes nothing
        while len(micro) < count:
            micro.append([filler])
        return micro

    def _train_policy(self, name: str, rows: list[dict], opt_settings: dict, clip_eps: float, k1: float, k3: float, objective: str = "pg") -> dict:
        p = self._policy(name)
        module = self._train_forward(name)
        params = self._params(name)
        if p.optimizer is None:
            p.optimizer = PolicyOptimizer(params, settings_config(opt_settings))
        else:
            p.optimizer.update_settings(opt_settings)
        micro = self._local_rows(rows)
        world = self.dist.world if self.dist else 1
        ddp = world > 1 and not self.fsdp
        # DDP, and FSDP's reduce-scatter of a sharded full policy, average gradients over ranks; the
        # loss is a sum, so undo the mean. LoRA adapters under FSDP are summed by one all-reduce.
        scale = world if ddp or (self.fsdp and p.kind == "full") else 1
        loss_total = torch.zeros((), dtype=torch.float64)
        try:
            for k, part in enumerate(micro):
                sync = self.dist.no_sync(module) if (ddp and k < len(micro) - 1) else nullcontext()
                with sync:
                    lp, ids = self._token_logprobs(lambda **kw: module(**kw), [r["ids"] for r in part])
                    width = ids.shape[1]
                    w, adv, old, ref = (torch.zeros_like(lp) for _ in range(4))
                    for b, r in enumerate(part):
                        n = len(r["ids"])
                        pad = width - n
                        if n < 2:
                            continue
                        cols = slice(pad, pad + n - 1)
                        w[b, cols] = torch.tensor(r["weights"][1:], dtype=lp.dtype)
                        if objective == "pg":
                            adv[b, cols] = torch.tensor(r["advantages"][1:], dtype=lp.dtype)
                            old[b, cols] = torch.tensor(r["oldLogprobs"][1:], dtype=lp.dtype)
                            ref[b, cols] = torch.tensor(r["refLogprobs"][1:], dtype=lp.dtype)
                    # nll: Σ w·(−lp), the pooled mean NLL when w = mask / #predicted (losses.ts).
                    token_loss = -lp if objective == "nll" else pg_token_loss(lp, old, ref, adv, clip_eps, k1, k3)
                    # Masked positions contribute nothing, not 0·inf.
                    loss = torch.where(w != 0, w * token_loss, torch.zeros_like(token_loss)).sum()
                    (loss * scale).backward()
                loss_total += loss.detach().double().cpu()
            if self.fsdp and p.kind == "lora":
                self.dist.all_reduce_grads(list(params.values()))
        finally:
            if self.gradient_checkpointing:
                (self.peft if p.kind == "lora" else p.model).gradient_checkpointing_disable()
            if p.kind == "lora":
                self._freeze_adapters()
        loss_value = float(self.dist.sum_float(float(loss_total)) if world > 1 else loss_total)
        if not math.isfinite(loss_value):
            p.optimizer.skip()
            step = {"lr": 0.0, "gradNorm": math.nan, "skipped": True}
        else:
            step = p.optimizer.apply()
        if p.kind == "full":
            for t in p.model.parameters():
                t.requires_grad_(False)
        if not step["skipped"]:
            p.version += 1
        fp = self.fingerprint(name)
        if world > 1:
            self.dist.check_same(fp, f"the weights of policy {name} after a training step")
        return {"loss": loss_value, "gradNorm": step["gradNorm"], "skipped": step["skipped"], "lr": step["lr"], "fingerprint": fp}

    def save_optimizer(self, name: str, out_dir: str) -> None:
        """Every rank calls it (sharded moments are gathered for rank 0 to write)."""
        p = self._policy(name)
        if p.optimizer is not None:
            p.optimizer.save(os.path.abspath(out_dir), name, write=self._writer)

    def load_optimizer(self, name: str, in_dir: str) -> None:
        p = self._policy(name)
        if os.path.lexists(os.path.join(in_dir, f"{name}.json")):
            p.optimizer = PolicyOptimizer.load(os.path.abspath(in_dir), name, self._params(name))

    def close(self) -> None:
        self.policies.clear()
        self._ddp.clear()
