"""Self-checks of the PyTorch Qwen2/LoRA reference.

Run:  /usr/bin/python3 -m unittest discover -s test/reference -p 'test_*.py'
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import qwen2_torch as q  # noqa: E402

BASE_CONFIG = q.TINY_CONFIG


def write_checkpoint(d, seed=0, st_dtype="F32", shards=1, std=0.2, **overrides):
    """A random Qwen2 checkpoint in HF layout (config.json + model.safetensors or shards)."""
    return q.write_checkpoint(d, overrides, seed=seed, std=std, save_dtype=st_dtype, shards=shards)


def hf_literal_logprobs(model, ids, mask, adapter=None):
    """An independent transcription of transformers' eager Qwen2 path (repeat_kv, additive
    4D mask, generate-style position ids) with one optional adapter for all rows."""
    cfg, p = model.cfg, model.params
    B, T = ids.shape
    H, KV, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    dt = model.dtype
    pos = mask.long().cumsum(-1) - 1
    pos.masked_fill_(mask == 0, 1)
    minv = torch.finfo(dt).min
    causal = torch.full((T, T), minv, dtype=dt).triu(1)
    am = causal[None, None].repeat(B, 1, 1, 1)
    am = am.masked_fill(mask[:, None, None, :] == 0, minv)
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    freqs = (inv[None, :, None].float().expand(B, -1, 1) @ pos[:, None, :].float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), -1)
    cos, sin = emb.cos().to(dt)[:, None], emb.sin().to(dt)[:, None]

    def rot(x):
        return torch.cat((-x[..., D // 2:], x[..., : D // 2]), -1)

    def lin(x, name, bias=False):
        y = x @ p[name + ".weight"].T
        if bias:
            y = y + p[name + ".bias"]
        if adapter is not None and name in adapter.modules:
            m = adapter.modules[name]
            y = y + (x @ adapter.tensors[m.key_a].T) @ adapter.tensors[m.key_b].T * m.scale
        return y

    def norm(x, w):
        v = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(v + cfg.rms_norm_eps))

    h = p["model.embed_tokens.weight"][ids]
    for i in range(cfg.num_hidden_layers):
        pre = f"model.layers.{i}"
        r = h
        x = norm(h, p[f"{pre}.input_layernorm.weight"])
        qs = lin(x, f"{pre}.self_attn.q_proj", True).view(B, T, H, D).transpose(1, 2)
        ks = lin(x, f"{pre}.self_attn.k_proj", True).view(B, T, KV, D).transpose(1, 2)
        vs = lin(x, f"{pre}.self_attn.v_proj", True).view(B, T, KV, D).transpose(1, 2)
        qs, ks = qs * cos + rot(qs) * sin, ks * cos + rot(ks) * sin
        n_rep = H // KV
        ks = ks[:, :, None].expand(B, KV, n_rep, T, D).reshape(B, H, T, D)
        vs = vs[:, :, None].expand(B, KV, n_rep, T, D).reshape(B, H, T, D)
        w = torch.matmul(qs, ks.transpose(2, 3)) * D ** -0.5 + am
        w = torch.softmax(w, -1)
        o = torch.matmul(w, vs).transpose(1, 2).reshape(B, T, H * D)
        h = r + lin(o, f"{pre}.self_attn.o_proj")
        r = h
        x = norm(h, p[f"{pre}.post_attention_layernorm.weight"])
        h = r + lin(F.silu(lin(x, f"{pre}.mlp.gate_proj")) * lin(x, f"{pre}.mlp.up_proj"), f"{pre}.mlp.down_proj")
    h = norm(h, p["model.norm.weight"])
    lm = p.get("lm_head.weight", p["model.embed_tokens.weight"])
    ls = torch.log_softmax(h @ lm.T, -1)
    return ls[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)


class Fixture(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        t = cls.tmp.name
        cls.untied = os.path.join(t, "untied")
        cls.tied = os.path.join(t, "tied")
        write_checkpoint(cls.untied, seed=1)
        write_checkpoint(cls.tied, seed=2, tie_word_embeddings=True, shards=3)
        cls.ref = q.Reference()
        cls.ad0 = os.path.join(t, "ad0")
        cls.ad1 = os.path.join(t, "ad1")
        cls.ad_zero = os.path.join(t, "adz")
        cls.ad_tied = os.path.join(t, "adt")
        cls.ref.handle({"op": "make_adapter", "model": cls.untied, "out": cls.ad0, "r": 4, "alpha": 8,
                        "targets": ["q_proj", "k_proj", "v_proj", "o_proj"], "seed": 3, "std": 0.3})
        cls.ref.handle({"op": "make_adapter", "model": cls.untied, "out": cls.ad1, "r": 2, "alpha": 5,
                        "targets": "all-linear", "seed": 4, "std": 0.3, "use_rslora": True})
        cls.ref.handle({"op": "make_adapter", "model": cls.untied, "out": cls.ad_zero, "r": 4, "alpha": 8,
                        "targets": "all-linear", "seed": 5, "init": "zero_b"})
        cls.ref.handle({"op": "make_adapter", "model": cls.tied, "out": cls.ad_tied, "r": 3, "alpha": 3,
                        "targets": ["up_proj", "down_proj", "gate_proj", "lm_head"], "seed": 6, "std": 0.3})

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def rows(self, seed=0, lens=(7, 4, 9), adapters=(0, -1, 1), vocab=97):
        g = torch.Generator().manual_seed(seed)
        return [{"ids": torch.randint(0, vocab, (n,), generator=g).tolist(), "adapter": a}
                for n, a in zip(lens, adapters)]

    def assertRowsClose(self, a, b, tol=1e-10):
        self.assertEqual(len(a), len(b))
        for ra, rb in zip(a, b):
            self.assertEqual(len(ra), len(rb))
            for x, y in zip(ra, rb):
                if x is None or y is None:
                    self.assertIs(x, y)
                else:
                    self.assertLess(abs(x - y), tol, f"{x} vs {y}")


class TestSafetensors(unittest.TestCase):
    def test_roundtrip_dtypes(self):
        with tempfile.TemporaryDirectory() as d:
            x = torch.randn(3, 5, dtype=torch.float64)
            for st, tdt in (("F32", torch.float32), ("F16", torch.float16), ("BF16", torch.bfloat16),
                            ("F64", torch.float64)):
                p = os.path.join(d, f"{st}.safetensors")
                q.write_safetensors(p, {"x": x, "i": torch.arange(4)}, dtype=st)
                hdr, start, _ = q.read_safetensors_header(p)
                self.assertEqual(hdr["x"]["dtype"], st)
                self.assertEqual(start % 8, 0)
                got = q.read_safetensors(p)
                self.assertTrue(torch.equal(got["x"], x.to(tdt).to(torch.float64)), st)
                self.assertEqual(got["i"].tolist(), [0, 1, 2, 3])

    def test_bf16_decoding_by_hand(self):
        # 0x3F80 = 1.0, 0xC000 = -2.0, 0x3EAB ~= 0.333984375
        raw = np.array([0x3F80, 0xC000, 0x3EAB], dtype="<u2").tobytes()
        hdr = json.dumps({"t": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "a.safetensors")
            with open(p, "wb") as f:
                f.write(len(hdr).to_bytes(8, "little") + hdr + raw)
            self.assertEqual(q.read_safetensors(p)["t"].tolist(), [1.0, -2.0, 0.333984375])

    def test_rejects_corrupt(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "bad.safetensors")
            with open(p, "wb") as f:
                f.write((10 ** 9).to_bytes(8, "little") + b"{}")
            with self.assertRaises(q.SafetensorsError):
                q.read_safetensors(p)
            hdr = json.dumps({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
            with open(p, "wb") as f:
                f.write(len(hdr).to_bytes(8, "little") + hdr + b"\0" * 8)
            with self.assertRaises(q.SafetensorsError):
                q.read_safetensors(p)


class TestConfig(unittest.TestCase):
    def test_validation(self):
        with self.assertRaises(q.ConfigError):
            q.Qwen2Config.from_dict(dict(BASE_CONFIG, model_type="llama"))
        with self.assertRaises(q.ConfigError):
            q.Qwen2Config.from_dict(dict(BASE_CONFIG, architectures=["Qwen2ForSequenceClassification"]))
        with self.assertRaises(q.ConfigError):
            q.Qwen2Config.from_dict(dict(BASE_CONFIG, rope_scaling={"type": "yarn", "factor": 4.0}))
        c = q.Qwen2Config.from_dict(dict(BASE_CONFIG, head_dim=16))
        self.assertEqual(c.head_dim, 16)
        self.assertEqual(c.linear_shapes()["q_proj"], (64, 32))
        c = q.Qwen2Config.from_dict(dict(BASE_CONFIG, rope_theta=None, rope_parameters={
            "rope_type": "default", "rope_theta": 1e6}))
        self.assertEqual(c.rope_theta, 1e6)

    def test_inv_freq_matches_hf_float32(self):
        inv = q.default_inv_freq(1000000.0, 64)
        self.assertEqual(inv.dtype, torch.float32)
        expect = 1.0 / (1000000.0 ** (torch.arange(0, 64, 2, dtype=torch.int64).float() / 64))
        self.assertTrue(torch.equal(inv, expect))
        # and it is NOT the float64 formula rounded once: the engine must reproduce the float32 steps
        exact = (1.0 / (1000000.0 ** (torch.arange(0, 64, 2).double() / 64))).float()
        self.assertFalse(torch.equal(inv, exact))


class TestModel(Fixture):
    def test_matches_literal_hf_transcription(self):
        for path in (self.untied, self.tied):
            m = q.load_model(path)
            batch = q.make_batch(self.rows(adapters=(-1, -1, -1)), 0, m.cfg.vocab_size)
            with torch.no_grad():
                mine = q.batch_logprobs(m, batch, None)[:, 1:]
                lit = hf_literal_logprobs(m, batch.ids, batch.mask)
            v = batch.valid[:, 1:]
            self.assertLess(float((mine - lit)[v].abs().max()), 1e-12)
        m = q.load_model(self.untied)
        ad = q.load_adapter(m.cfg, self.ad1)
        batch = q.make_batch(self.rows(adapters=(0, 0, 0)), 1, m.cfg.vocab_size)
        with torch.no_grad():
            mine = q.batch_logprobs(m, batch, q.LoraBatch([ad], batch.adapters))[:, 1:]
            lit = hf_literal_logprobs(m, batch.ids, batch.mask, ad)
        self.assertLess(float((mine - lit)[batch.valid[:, 1:]].abs().max()), 1e-12)

    def test_tied_and_sharded_loading(self):
        m = q.load_model(self.tied)
        self.assertNotIn("lm_head.weight", m.params)
        self.assertTrue(m.cfg.tie_word_embeddings)
        r = self.ref.handle({"op": "logprobs", "model": self.tied, "rows": self.rows(adapters=(-1, -1, -1))})
        self.assertTrue(all(x is None or x < 0 for row in r["logprobs"] for x in row))

    def test_half_precision_checkpoints(self):
        with tempfile.TemporaryDirectory() as d:
            for st, tdt in (("F16", torch.float16), ("BF16", torch.bfloat16)):
                p = os.path.join(d, st)
                params = write_checkpoint(p, seed=7, st_dtype=st)
                m = q.load_model(p)
                for n, t in params.items():
                    self.assertTrue(torch.equal(m.params[n], t.to(tdt).to(torch.float64)), n)
                r = self.ref.handle({"op": "logprobs", "model": p, "rows": self.rows(adapters=(-1, -1, -1))})
                self.assertEqual(len(r["logprobs"]), 3)

    def test_float32_close_to_float64(self):
        rows = self.rows()
        a = self.ref.handle({"op": "logprobs", "model": self.untied, "adapters": [self.ad0, self.ad1], "rows": rows})
        b = self.ref.handle({"op": "logprobs", "model": self.untied, "adapters": [self.ad0, self.ad1], "rows": rows,
                             "dtype": "float32"})
        self.assertRowsClose(a["logprobs"], b["logprobs"], tol=1e-4)

    def test_rope_exact_vs_hf_close(self):
        rows = self.rows()
        a = self.ref.handle({"op": "logprobs", "model": self.untied, "rows": rows, "adapters": [self.ad0, self.ad1]})
        b = self.ref.handle({"op": "logprobs", "model": self.untied, "rows": rows, "adapters": [self.ad0, self.ad1],
                             "rope": "exact"})
        self.assertRowsClose(a["logprobs"], b["logprobs"], tol=1e-5)

    def test_rope_is_shift_invariant(self):
        # Scores depend on position differences only: an engine that forgets the pad offset in
        # position ids is NOT caught by log-prob comparisons beyond rounding noise.  With
        # rope='exact' the shift changes nothing at 1e-10; with HF's float32 angles it is noise.
        for rope, tol in (("exact", 1e-10), ("hf", 1e-4)):
            m = q.load_model(self.untied, rope=rope)
            b = q.make_batch(self.rows(adapters=(-1, -1, -1), lens=(9, 9, 9)), 0, m.cfg.vocab_size)
            with torch.no_grad():
                h0 = m.forward(b.ids, b.pos, b.mask)
                h1 = m.forward(b.ids, b.pos + 37, b.mask)
                l0 = m.next_token_logprobs(h0[:, :-1], b.ids[:, 1:])
                l1 = m.next_token_logprobs(h1[:, :-1], b.ids[:, 1:])
            d = float((l0 - l1).abs().max())
            self.assertLess(d, tol, rope)

    def test_kv_cache_equals_full_recomputation(self):
        rows = self.rows(lens=(7, 4, 9, 9), adapters=(0, -1, 1, 1))
        rows[3]["mask"] = [0, 0, 1, 1, 1, 1, 1, 1, 1]  # explicit left padding inside a row
        for model, ads in ((self.untied, [self.ad0, self.ad1]), (self.tied, [self.ad_tied, self.ad_tied])):
            full = self.ref.handle({"op": "logprobs", "model": model, "adapters": ads, "rows": rows})
            for split in (1, 3, 8, 9):
                kv = self.ref.handle({"op": "logprobs_kv", "model": model, "adapters": ads, "rows": rows,
                                      "split": split})
                self.assertRowsClose(full["logprobs"], kv["logprobs"], tol=1e-12)

    def test_padding_does_not_change_a_row(self):
        rows = self.rows(lens=(7, 4, 12), adapters=(0, 1, -1))
        batched = self.ref.handle({"op": "logprobs", "model": self.untied, "adapters": [self.ad0, self.ad1],
                                   "rows": rows})["logprobs"]
        for i, r in enumerate(rows):
            alone = self.ref.handle({"op": "logprobs", "model": self.untied, "adapters": [self.ad0, self.ad1],
                                     "rows": [r]})["logprobs"][0]
            self.assertRowsClose([batched[i]], [alone], tol=1e-12)
            # explicit extra left padding (pad ids arbitrary) gives the same numbers
            padded = {"ids": [5, 6, 7] + r["ids"], "mask": [0, 0, 0] + [1] * len(r["ids"]), "adapter": r["adapter"]}
            lp = self.ref.handle({"op": "logprobs", "model": self.untied, "adapters": [self.ad0, self.ad1],
                                  "rows": [padded]})["logprobs"][0]
            self.assertEqual(lp[:4], [None] * 4)
            self.assertRowsClose([lp[3:]], [alone], tol=1e-12)

    def test_per_row_adapters_equal_single_adapter_runs(self):
        rows = self.rows(lens=(6, 8, 5, 8), adapters=(1, 0, -1, 1))
        mixed = self.ref.handle({"op": "logprobs", "model": self.untied, "adapters": [self.ad0, self.ad1],
                                 "rows": rows})["logprobs"]
        for i, r in enumerate(rows):
            a = r["adapter"]
            ads = [] if a < 0 else [[self.ad0, self.ad1][a]]
            single = self.ref.handle({"op": "logprobs", "model": self.untied, "adapters": ads,
                                      "rows": [dict(r, adapter=-1 if a < 0 else 0)]})["logprobs"][0]
            self.assertRowsClose([mixed[i]], [single], tol=1e-12)
        # and the adapters really change the numbers
        base = self.ref.handle({"op": "logprobs", "model": self.untied, "rows": [dict(rows[0], adapter=-1)]})
        diff = max(abs(x - y) for x, y in zip(mixed[0][1:], base["logprobs"][0][1:]))
        self.assertGreater(diff, 1e-3)

    def test_zero_b_adapter_equals_base(self):
        rows = self.rows(adapters=(0, 0, 0))
        a = self.ref.handle({"op": "logprobs", "model": self.untied, "adapters": [self.ad_zero], "rows": rows})
        b = self.ref.handle({"op": "logprobs", "model": self.untied, "rows": [dict(r, adapter=-1) for r in rows]})
        self.assertRowsClose(a["logprobs"], b["logprobs"], tol=0.0 + 1e-15)

    def test_greedy_matches_recomputation(self):
        rows = self.rows(lens=(3, 6, 4), adapters=(0, -1, 1))
        n = 6
        r = self.ref.handle({"op": "greedy", "model": self.untied, "adapters": [self.ad0, self.ad1], "rows": rows,
                             "max_new_tokens": n})
        m = q.load_model(self.untied)
        ads = [q.load_adapter(m.cfg, self.ad0), q.load_adapter(m.cfg, self.ad1)]
        for i, row in enumerate(rows):
            ids = list(row["ids"])
            for step in range(n):
                b = q.make_batch([{"ids": ids, "adapter": row["adapter"]}], 2, m.cfg.vocab_size)
                lora = q.LoraBatch(ads, b.adapters)
                with torch.no_grad():
                    h = m.forward(b.ids, b.pos, b.mask, lora=lora)
                    ls = torch.log_softmax(m.logits(h[:, -1:], lora)[0, -1], -1)
                t = int(torch.argmax(ls))
                self.assertEqual(t, r["ids"][i][step])
                self.assertAlmostEqual(float(ls[t]), r["logprobs"][i][step], delta=1e-12)
                ids.append(t)
        # generated tokens are scored by logprobs with the same numbers
        full = [{"ids": row["ids"] + r["ids"][i], "adapter": row["adapter"]} for i, row in enumerate(rows)]
        lp = self.ref.handle({"op": "logprobs", "model": self.untied, "adapters": [self.ad0, self.ad1],
                              "rows": full})["logprobs"]
        for i, row in enumerate(rows):
            self.assertRowsClose([lp[i][len(row["ids"]):]], [r["logprobs"][i]], tol=1e-12)

    def test_greedy_eos(self):
        rows = self.rows(lens=(3, 6), adapters=(-1, -1))
        r = self.ref.handle({"op": "greedy", "model": self.untied, "rows": rows, "max_new_tokens": 5})
        eos = r["ids"][0][1]
        r2 = self.ref.handle({"op": "greedy", "model": self.untied, "rows": rows, "max_new_tokens": 5,
                              "eos_token_ids": [eos]})
        self.assertEqual(r2["ids"][0], r["ids"][0][: r["ids"][0].index(eos) + 1])


class TestPeftSemantics(Fixture):
    def test_scales_and_patterns(self):
        cfg = q.read_config(self.untied)
        ad = q.load_adapter(cfg, self.ad1)  # rslora r=2 alpha=5
        self.assertEqual(len(ad.modules), 2 * 7)
        self.assertNotIn("lm_head", ad.modules)  # all-linear excludes the output layer
        self.assertAlmostEqual(next(iter(ad.modules.values())).scale, 5 / math.sqrt(2))
        ad0 = q.load_adapter(cfg, self.ad0)
        self.assertEqual(next(iter(ad0.modules.values())).scale, 2.0)
        a = q.make_adapter(cfg, r=4, alpha=8, targets=["q_proj", "down_proj"],
                           rank_pattern={"down_proj": 2, "layers.1.self_attn.q_proj": 3},
                           alpha_pattern={"model.layers.0.self_attn.q_proj": 12})
        mods = a.modules
        self.assertEqual(mods["model.layers.0.mlp.down_proj"].r, 2)
        self.assertEqual(mods["model.layers.0.mlp.down_proj"].scale, 8 / 2)
        self.assertEqual(mods["model.layers.1.self_attn.q_proj"].r, 3)
        self.assertEqual(mods["model.layers.0.self_attn.q_proj"].scale, 12 / 4)
        self.assertEqual(mods["model.layers.1.mlp.down_proj"].r, 2)
        # regex target_modules (full match) and layers_to_transform
        b = q.make_adapter(cfg, targets=r".*\.1\.mlp\.(up|down)_proj")
        self.assertEqual(sorted(b.modules), ["model.layers.1.mlp.down_proj", "model.layers.1.mlp.up_proj"])
        c = q.make_adapter(cfg, targets=["v_proj"], layers=[1])
        self.assertEqual(sorted(c.modules), ["model.layers.1.self_attn.v_proj"])

    def test_peft_key_names_on_disk(self):
        hdr, _, _ = q.read_safetensors_header(os.path.join(self.ad0, "adapter_model.safetensors"))
        self.assertIn("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", hdr)
        self.assertEqual(hdr["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]["shape"], [4, 32])
        self.assertEqual(hdr["base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"]["shape"], [16, 4])
        with open(os.path.join(self.ad0, "adapter_config.json")) as f:
            conf = json.load(f)
        self.assertEqual(conf["peft_type"], "LORA")

    def test_adapter_mismatch_is_an_error(self):
        cfg = q.read_config(self.untied)
        with tempfile.TemporaryDirectory() as d:
            ad = q.load_adapter(cfg, self.ad0)
            conf = dict(ad.config, target_modules=["q_proj"])  # file has k/v/o too
            q.write_adapter(d, q.LoraAdapter(conf, ad.modules, ad.tensors))
            with self.assertRaises(q.AdapterError):
                q.load_adapter(cfg, d)
            conf = dict(ad.config, use_dora=True)
            q.write_adapter(d, q.LoraAdapter(conf, ad.modules, ad.tensors))
            with self.assertRaises(q.AdapterError):
                q.load_adapter(cfg, d)


def _fd_check(test, ref, req, names_per_leaf=3, eps=1e-6, rtol=1e-6):
    """Compare autograd gradients with central finite differences of the returned loss."""
    g = ref.handle(dict(req, op="grad"))
    rng = np.random.default_rng(0)
    m = ref.model(req)
    ads = ref.adapters(req, m)
    batch = q.make_batch(req["rows"], len(ads), m.cfg.vocab_size)
    checked = 0
    for name, flat in g["grads"].items():
        flat = np.array(flat)
        if not np.any(flat):
            continue
        idxs = list(rng.choice(len(flat), size=min(names_per_leaf, len(flat)), replace=False))
        idxs.append(int(np.argmax(np.abs(flat))))
        for j in idxs:
            def loss_at(delta):
                if req.get("trainable") == "full":
                    params = dict(m.params)
                    t = params[name].clone()
                    t.view(-1)[j] += delta
                    params[name] = t
                    lora = q.LoraBatch(ads, batch.adapters)
                else:
                    i, key = name.split(":", 1)
                    i = int(i)
                    tens = dict(ads[i].tensors)
                    t = tens[key].clone()
                    t.view(-1)[j] += delta
                    tens[key] = t
                    lst = list(ads)
                    lst[i] = ads[i].with_tensors(tens)
                    lora = q.LoraBatch(lst, batch.adapters)
                    params = None
                with torch.no_grad():
                    lp = q.batch_logprobs(m, batch, lora, params)
                    return float(q.compute_loss(lp, batch, req["loss"], torch.float64))
            fd = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
            an = flat[j]
            test.assertLess(abs(fd - an), rtol * max(1e-4, abs(an)) + 1e-9, f"{name}[{j}]: fd {fd} vs {an}")
            checked += 1
    test.assertGreater(checked, 0)
    return g


class TestGradients(Fixture):
    def weights(self, rows, prompt=2):
        n = sum(max(0, len(r["ids"]) - prompt) for r in rows)
        return [[0.0] * prompt + [1.0 / n] * (len(r["ids"]) - prompt) for r in rows]

    def test_nll_lora_grads_match_finite_differences(self):
        rows = self.rows(lens=(6, 4, 7), adapters=(0, 1, 1))
        req = {"model": self.untied, "adapters": [self.ad0, self.ad1], "trainable": "lora", "rows": rows,
               "loss": {"type": "nll", "weights": self.weights(rows)}}
        g = _fd_check(self, self.ref, req)
        self.assertIn("0:base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", g["grads"])
        self.assertIn("1:base_model.model.model.layers.1.mlp.down_proj.lora_B.weight", g["grads"])
        # pooled mean NLL
        lps = [x for i, r in enumerate(g["token_logprobs"]) for x in r[2:]]
        self.assertAlmostEqual(g["loss"], -sum(lps) / len(lps), delta=1e-12)

    def test_pg_lora_grads_match_finite_differences(self):
        rows = self.rows(lens=(6, 5, 7), adapters=(0, 1, -1), seed=3)
        lp = self.ref.handle({"op": "logprobs", "model": self.untied, "adapters": [self.ad0, self.ad1],
                              "rows": rows})["logprobs"]
        g = torch.Generator().manual_seed(1)
        old, refl, adv = [], [], []
        for r in lp:
            old.append([None if x is None else x + 0.3 * float(torch.randn(1, generator=g)) for x in r])
            refl.append([None if x is None else x + 0.5 * float(torch.randn(1, generator=g)) for x in r])
            adv.append([float(torch.randn(1, generator=g)) for _ in r])
        loss = {"type": "pg", "weights": self.weights(rows), "advantages": adv, "old_logprobs": old,
                "ref_logprobs": refl, "clip_eps": 0.2, "kl_k1": 0.05, "kl_k3": 0.1}
        req = {"model": self.untied, "adapters": [self.ad0, self.ad1], "trainable": "lora", "rows": rows,
               "loss": loss}
        res = _fd_check(self, self.ref, req)
        # the loss value itself, recomputed in plain Python from the token log-probs
        tot = 0.0
        w = self.weights(rows)
        for b, r in enumerate(res["token_logprobs"]):
            for t, x in enumerate(r):
                if w[b][t] == 0:
                    continue
                ratio = math.exp(x - old[b][t])
                pg = -min(ratio * adv[b][t], min(max(ratio, 0.8), 1.2) * adv[b][t])
                k1 = x - refl[b][t]
                k3 = math.exp(refl[b][t] - x) - (refl[b][t] - x) - 1
                tot += w[b][t] * (pg + 0.05 * k1 + 0.1 * k3)
        self.assertAlmostEqual(res["loss"], tot, delta=1e-12)

    def test_full_grads_match_finite_differences(self):
        for model, ads in ((self.untied, [self.ad0]), (self.tied, [self.ad_tied])):
            rows = self.rows(lens=(5, 6), adapters=(0, -1), seed=5)
            req = {"model": model, "adapters": ads, "trainable": "full", "rows": rows,
                   "loss": {"type": "nll", "weights": self.weights(rows)}}
            g = _fd_check(self, self.ref, req, names_per_leaf=1)
            self.assertIn("model.embed_tokens.weight", g["grads"])
            self.assertEqual("lm_head.weight" in g["grads"], model == self.untied)

    def test_sgd_writes_updated_adapter(self):
        rows = self.rows(lens=(6, 7), adapters=(0, 0), seed=9)
        loss = {"type": "nll", "weights": self.weights(rows)}
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "trained")
            base_req = {"model": self.untied, "adapters": [self.ad0], "trainable": "lora", "rows": rows, "loss": loss}
            g0 = self.ref.handle(dict(base_req, op="grad"))
            r = self.ref.handle(dict(base_req, op="sgd", lr=0.5, steps=3, out=out, save_dtype="F64"))
            self.assertEqual(len(r["losses"]), 3)
            self.assertAlmostEqual(r["losses"][0], g0["loss"], delta=1e-12)
            self.assertLess(r["final_loss"], r["losses"][0])
            g1 = self.ref.handle(dict(base_req, op="grad", adapters=[out]))
            self.assertAlmostEqual(g1["loss"], r["final_loss"], delta=1e-12)
            # one step by hand
            out1 = os.path.join(d, "one")
            self.ref.handle(dict(base_req, op="sgd", lr=0.5, steps=1, out=out1, save_dtype="F64"))
            cfg = q.read_config(self.untied)
            a0, a1 = q.load_adapter(cfg, self.ad0), q.load_adapter(cfg, out1)
            for k, t in a0.tensors.items():
                exp = t - 0.5 * torch.tensor(g0["grads"]["0:" + k], dtype=torch.float64).view(t.shape)
                self.assertLess(float((a1.tensors[k] - exp).abs().max()), 1e-15)

    def test_bad_weights_rejected(self):
        rows = self.rows(lens=(4,), adapters=(0,))
        with self.assertRaises(q.RequestError):
            self.ref.handle({"op": "grad", "model": self.untied, "adapters": [self.ad0], "rows": rows,
                             "loss": {"type": "nll", "weights": [[1.0, 1.0, 1.0, 1.0]]}})  # position 0
        with self.assertRaises(q.RequestError):
            self.ref.handle({"op": "grad", "model": self.untied, "adapters": [self.ad0], "rows": rows,
                             "loss": {"type": "pg", "weights": [[0, 1.0, 1.0, 1.0]], "advantages": [[0, 1, 1, 1]],
                                      "old_logprobs": [[None, None, -1, -1]]}})


class TestServer(Fixture):
    def test_protocol_and_bad_input(self):
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "server.py")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reqs = [
            "this is not json",
            json.dumps([1, 2]),
            json.dumps({"op": "nope", "id": 7}),
            json.dumps({"op": "logprobs", "model": "/does/not/exist", "rows": []}),
            json.dumps({"op": "logprobs", "model": self.untied, "rows": [{"ids": [1, 2, 100000]}]}),
            json.dumps({"op": "ping", "id": "x"}),
            json.dumps({"op": "logprobs", "model": self.untied, "rows": [{"ids": [1, 2, 3]}], "id": 3}),
            "",
            json.dumps({"op": "shutdown"}),
        ]
        out, err = p.communicate("\n".join(reqs) + "\n", timeout=120)
        lines = [json.loads(x) for x in out.splitlines()]
        self.assertEqual(len(lines), 8, err)
        self.assertEqual([x["ok"] for x in lines], [False] * 5 + [True, True, True])
        self.assertEqual(lines[2]["id"], 7)
        self.assertIn("unknown op", lines[2]["error"])
        self.assertIn("vocabulary", lines[4]["error"])
        self.assertEqual(lines[5]["id"], "x")
        self.assertEqual(lines[6]["logprobs"][0][0], None)
        self.assertEqual(p.returncode, 0)


class TestBench(unittest.TestCase):
    def test_tiny_bench_runs(self):
        spec = {"config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                           "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128},
                "batch_sizes": [1, 2], "prompt_len": 8, "new_tokens": 4, "threads": 1, "repeats": 1,
                "train_batch": 2, "train_seq_len": 8, "lora": {"r": 4, "alpha": 8},
                "phases": ["decode", "decode_lora", "prefill", "score", "lora", "full"]}
        out = subprocess.run([sys.executable, os.path.join(HERE, "bench_torch.py"), json.dumps(spec)],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        res = json.loads(out.stdout)
        self.assertEqual([d["batch"] for d in res["decode"]], [1, 2])
        self.assertEqual([d["adapters"] for d in res["decode_lora"]], [1, 2])
        for k in ("prefill", "score"):
            self.assertTrue(all(x["tokens_per_s"] > 0 for x in res[k]))
        self.assertGreater(res["lora_step"]["tokens_per_s"], 0)
        self.assertGreater(res["full_step"]["tokens_per_s"], 0)
        self.assertGreater(res["peak_rss_mb"], 0)
        self.assertTrue(res["checks"]["decode_matches_reference"])


if __name__ == "__main__":
    unittest.main()
