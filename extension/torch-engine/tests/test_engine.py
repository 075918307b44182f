"""The engine against transformers and PEFT used directly, on tiny random Qwen2 and Llama models."""

import math
import os

import pytest
import torch

from absp_torch.engine import TorchEngine
from absp_torch.protocol import CheckpointError, RequestError

from conftest import make_peft_adapter

ROWS = [[1, 5, 9, 14, 3, 7], [4, 8], [10, 11, 12, 13, 20, 21, 22, 30, 31]]


def hf_logprobs(model, ids):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return [None] + lp.tolist()


def close(a, b, tol=1e-5):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
        else:
            assert abs(x - y) < tol, (x, y)


@pytest.fixture
def engine(model_dir):
    e = TorchEngine(model_dir, "cpu", "float32")
    yield e
    e.close()


def test_base_logprobs_equal_transformers_with_left_padding(engine, model_dir):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    got = engine.logprobs([{"ids": r, "policy": None} for r in ROWS])
    for r, lp in zip(ROWS, got):
        close(lp, hf_logprobs(hf, r))


def test_mixed_adapter_batch_equals_peft_one_adapter_at_a_time(engine, model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    a = make_peft_adapter(model_dir, str(tmp_path / "a"), ["q_proj", "v_proj", "down_proj"], 4, 8, 1)
    d = make_peft_adapter(model_dir, str(tmp_path / "d"), ["k_proj", "o_proj", "up_proj"], 2, 6, 2)
    engine.load_policy("attacker", a, "lora")
    engine.load_policy("defender", d, "lora")
    rows = [{"ids": ROWS[0], "policy": "attacker"}, {"ids": ROWS[1], "policy": None}, {"ids": ROWS[2], "policy": "defender"}, {"ids": ROWS[2], "policy": "attacker"}]
    got = engine.logprobs(rows)
    for row, lp in zip(rows, got):
        base = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        model = base if row["policy"] is None else PeftModel.from_pretrained(base, a if row["policy"] == "attacker" else d).eval()
        close(lp, hf_logprobs(model, row["ids"]))
    # The adapters change the model: the mixed batch is not just the base.
    assert abs(got[0][-1] - engine.logprobs([{"ids": ROWS[0], "policy": None}])[0][-1]) > 1e-3


def test_generation_greedy_equals_transformers_generate_and_reports_its_logprobs(engine, model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = [[1, 5, 9], [4, 8, 3, 3, 7]]
    out = engine.generate([{"prompt": p, "policy": None, "seed": 0} for p in prompts], {"maxNewTokens": 6, "temperature": 0, "topP": 1, "stopTokens": []})
    for p, g in zip(prompts, out):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([p]), max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=0)[0, len(p):].tolist()
        assert g["tokens"] == ref
        close(g["logprobs"], engine.logprobs([{"ids": p + g["tokens"], "policy": None}])[0][len(p):], 1e-4)
        assert g["finish"] == "length" and g["fingerprint"] is None


def test_sampling_is_per_row_seeded_and_batch_independent(engine):
    settings = {"maxNewTokens": 8, "temperature": 1.0, "topP": 0.9, "stopTokens": []}
    rows = [{"prompt": [1, 2, 3], "policy": None, "seed": s} for s in (11, 12, 13)]
    batch = engine.generate(rows, settings)
    alone = [engine.generate([r], settings)[0] for r in rows]
    assert [g["tokens"] for g in batch] == [g["tokens"] for g in alone]
    assert len({tuple(g["tokens"]) for g in batch}) > 1
    assert engine.generate(rows[:1], settings)[0]["tokens"] == batch[0]["tokens"]


def test_stop_tokens_end_a_row(engine):
    first = engine.generate([{"prompt": [1, 2], "policy": None, "seed": 0}], {"maxNewTokens": 5, "temperature": 0, "topP": 1, "stopTokens": []})[0]
    stop = first["tokens"][1]
    g = engine.generate([{"prompt": [1, 2], "policy": None, "seed": 0}], {"maxNewTokens": 5, "temperature": 0, "topP": 1, "stopTokens": [stop]})[0]
    assert g["finish"] == "stop" and g["tokens"][-1] == stop and len(g["tokens"]) <= 2


def test_next_token_logprobs_equal_scoring_the_appended_candidate(engine):
    engine.create_policy("p", {"kind": "lora", "rank": 2, "alpha": 4, "targets": ["q_proj"], "seed": 3})
    cands = [2, 7, 40]
    got = engine.next_token_logprobs([{"ids": [1, 5, 9], "policy": None}, {"ids": [4], "policy": "p"}], cands)
    for row, lps in zip([([1, 5, 9], None), ([4], "p")], got):
        for c, lp in zip(cands, lps):
            assert abs(lp - engine.logprobs([{"ids": row[0] + [c], "policy": row[1]}])[0][-1]) < 1e-5


def pg_sample(ids, policy, prompt_len, adv, old, ref):
    n = len(ids)
    w = [0.0] * n
    a = [0.0] * n
    o = [0.0] * n
    r = [0.0] * n
    for i in range(prompt_len, n):
        w[i] = 1.0 / (n - prompt_len)
        a[i] = adv
        o[i] = old[i]
        r[i] = ref[i]
    return {"ids": ids, "policy": policy, "weights": w, "advantages": a, "oldLogprobs": o, "refLogprobs": r}


def test_policy_gradient_step_equals_autograd_on_peft_and_an_sgd_update(engine, model_dir, tmp_path):
    """One SGD step of the PG + k3 loss: the engine's adapter equals W − lr·∇ computed directly with PEFT."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    a = make_peft_adapter(model_dir, str(tmp_path / "a"), ["q_proj", "v_proj"], 4, 8, 5)
    engine.load_policy("attacker", a, "lora")
    ids = [1, 5, 9, 14, 3, 7, 8]
    base_lp = engine.logprobs([{"ids": ids, "policy": None}])[0]
    cur_lp = engine.logprobs([{"ids": ids, "policy": "attacker"}])[0]
    old = [0.0] + [x + 0.05 for x in cur_lp[1:]]
    ref = [0.0] + base_lp[1:]
    sample = pg_sample(ids, "attacker", 3, 1.5, old, ref)
    settings = {"clipEps": 0.2, "klK1": 0.0, "klK3": 0.1, "optimizers": {"attacker": {"kind": "sgd", "lr": 0.5, "weightDecay": 0.0, "clipNorm": None, "warmupSteps": 0}}}
    report = engine.train_step([sample], settings)
    after = {n: p.detach().clone() for n, p in engine._lora_params("attacker").items()}

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), a, is_trainable=True)
    logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    lp = torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    w = torch.tensor(sample["weights"][1:])
    ratio = torch.exp(lp - torch.tensor(old[1:]))
    adv = torch.tensor(sample["advantages"][1:])
    pg = -torch.minimum(ratio * adv, torch.clamp(ratio, 0.8, 1.2) * adv)
    lr_ = torch.tensor(ref[1:]) - lp
    loss = (w * (pg + 0.1 * (torch.exp(lr_) - lr_ - 1))).sum()
    loss.backward()
    assert abs(report["policies"]["attacker"]["loss"] - loss.item()) < 1e-5
    from absp_torch.adapters import optimizer_name

    for n, p in model.named_parameters():
        if "lora_" in n:
            want = p.detach() - 0.5 * p.grad
            got = after[optimizer_name(n)]
            assert torch.allclose(got, want, atol=1e-6, rtol=1e-5), n
    assert report["policies"]["attacker"]["fingerprint"] == engine.fingerprint("attacker")


def test_saved_adapter_reloads_in_peft_with_the_same_logprobs_and_fingerprint(engine, model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    engine.create_policy("defender", {"kind": "lora", "rank": 4, "alpha": 8, "targets": ["q_proj", "gate_proj"], "seed": 2})
    ids = [1, 5, 9, 14, 3]
    settings = {"clipEps": 0.2, "klK1": 0.0, "klK3": 0.0, "optimizers": {"defender": {"kind": "adamw", "lr": 0.05, "weightDecay": 0.0, "clipNorm": 1.0, "warmupSteps": 0}}}
    cur = engine.logprobs([{"ids": ids, "policy": "defender"}])[0]
    fp0 = engine.fingerprint("defender")
    engine.train_step([pg_sample(ids, "defender", 2, 1.0, [0.0] + cur[1:], [0.0] + cur[1:])], settings)
    assert engine.fingerprint("defender") != fp0
    saved = engine.save_policy("defender", str(tmp_path / "d"))
    assert saved["fingerprint"] == engine.fingerprint("defender")
    assert sorted(os.listdir(tmp_path / "d")) == ["adapter_config.json", "adapter_model.safetensors"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), str(tmp_path / "d")).eval()
    close(engine.logprobs([{"ids": ids, "policy": "defender"}])[0], hf_logprobs(model, ids))
    engine.load_policy("again", str(tmp_path / "d"), "lora")
    assert engine.fingerprint("again") == saved["fingerprint"]


def test_optimizer_state_resumes_exactly(engine, tmp_path):
    settings = {"clipEps": 0.2, "klK1": 0.0, "klK3": 0.0, "optimizers": {"p": {"kind": "adamw", "lr": 0.02, "weightDecay": 0.01, "clipNorm": 1.0, "warmupSteps": 2}}}
    ids = [1, 5, 9, 14, 3]

    def step(name):
        cur = engine.logprobs([{"ids": ids, "policy": name}])[0]
        s = pg_sample(ids, name, 2, 1.0, [0.0] + cur[1:], [0.0] + cur[1:])
        return engine.train_step([s], {**settings, "optimizers": {name: settings["optimizers"]["p"]}})["policies"][name]

    engine.create_policy("p", {"kind": "lora", "rank": 2, "alpha": 4, "targets": ["q_proj"], "seed": 9})
    engine.policies["p"].optimizer = None
    r1 = step("p")
    assert r1["lr"] == pytest.approx(0.01)  # warmup: step 1 of 2
    engine.save_policy("p", str(tmp_path / "a"))
    engine.save_optimizer("p", str(tmp_path / "o"))
    r2 = step("p")
    engine.load_policy("q", str(tmp_path / "a"), "lora")
    # The state files are the built-in engine's: q.json / q.safetensors are p's, renamed.
    for ext in ("json", "safetensors"):
        os.replace(tmp_path / "o" / f"p.{ext}", tmp_path / "o" / f"q.{ext}")
    engine.load_optimizer("q", str(tmp_path / "o"))
    r2q = step("q")
    assert r2q["lr"] == r2["lr"] == pytest.approx(0.02)
    assert engine.fingerprint("q") == engine.fingerprint("p")


def test_nll_loss_and_full_policy(engine, tmp_path):
    engine.create_policy("full", {"kind": "full"})
    assert engine.policy_parameters("full") == engine.base_parameters
    ids = [1, 5, 9, 14, 3]
    before = engine.logprobs([{"ids": ids, "policy": "full"}])[0]
    close(before, engine.logprobs([{"ids": ids, "policy": None}])[0])
    w = [0.0] + [0.25] * 4
    settings = {"loss": "nll", "optimizers": {"full": {"kind": "sgd", "lr": 0.1, "weightDecay": 0.0, "clipNorm": None, "warmupSteps": 0}}}
    r = engine.train_step([{"ids": ids, "policy": "full", "weights": w}], settings)["policies"]["full"]
    assert r["loss"] == pytest.approx(-sum(before[1:]) / 4, rel=1e-5)
    after = engine.logprobs([{"ids": ids, "policy": "full"}])[0]
    assert sum(after[1:]) > sum(before[1:])
    # The anchor stays the original base.
    close(engine.logprobs([{"ids": ids, "policy": None}])[0], before)
    engine.save_policy("full", str(tmp_path / "m"))
    engine.load_policy("full2", str(tmp_path / "m"), "full")
    close(engine.logprobs([{"ids": ids, "policy": "full2"}])[0], after)


def test_a_non_finite_loss_skips_the_step_and_keeps_the_weights(engine):
    engine.create_policy("p", {"kind": "lora", "rank": 2, "alpha": 4, "targets": ["q_proj"], "seed": 1})
    fp = engine.fingerprint("p")
    ids = [1, 5, 9]
    s = {"ids": ids, "policy": "p", "weights": [0, 1, 1], "advantages": [0, 1, 1], "oldLogprobs": [0, float("nan"), 0], "refLogprobs": [0, 0, 0]}
    r = engine.train_step([s], {"clipEps": 0.2, "klK1": 0, "klK3": 0, "optimizers": {"p": {"kind": "adamw", "lr": 0.1, "weightDecay": 0, "clipNorm": 1, "warmupSteps": 0}}})
    assert r["policies"]["p"]["skipped"] is True and math.isnan(r["policies"]["p"]["gradNorm"])
    assert engine.fingerprint("p") == fp


def test_bad_requests_are_clear_errors(engine):
    with pytest.raises(RequestError, match="unknown token id 999"):
        engine.logprobs([{"ids": [1, 999], "policy": None}])
    with pytest.raises(RequestError, match="no policy named 'ghost'"):
        engine.logprobs([{"ids": [1, 2], "policy": "ghost"}])
    with pytest.raises(RequestError, match="empty"):
        engine.generate([{"prompt": [], "policy": None, "seed": 0}], {"maxNewTokens": 2})
    with pytest.raises(RequestError, match="not a linear layer"):
        engine.create_policy("x", {"kind": "lora", "targets": ["lm_head"]})
    with pytest.raises(RequestError, match="no policy named None"):
        engine.train_step([{"ids": [1, 2, 3], "policy": None, "weights": [0, 1, 1]}], {})
    engine.create_policy("p", {"kind": "lora", "rank": 2, "targets": ["q_proj"]})
    with pytest.raises(RequestError, match="must have one number per token"):
        engine.train_step([{"ids": [1, 2, 3], "policy": "p", "weights": [0, 1]}], {})
    with pytest.raises(RequestError, match="no optimiser settings for policy p"):
        engine.train_step([{"ids": [1, 2, 3], "policy": "p", "weights": [0, 1, 1], "advantages": [0, 0, 0], "oldLogprobs": [0, 0, 0], "refLogprobs": [0, 0, 0]}], {})


def test_llama_and_qwen2_are_the_supported_architectures(qwen2_dir, llama_dir):
    for d, arch in ((qwen2_dir, "Qwen2ForCausalLM"), (llama_dir, "LlamaForCausalLM")):
        e = TorchEngine(d, "cpu", "float32")
        assert e.info()["architecture"] == arch
        e.close()


def test_an_adapter_of_another_shape_is_refused_naming_it(engine, tmp_path, llama_dir, qwen2_dir, model_dir):
    other = llama_dir if model_dir == qwen2_dir else qwen2_dir
    from transformers import AutoConfig

    if AutoConfig.from_pretrained(other).hidden_size != AutoConfig.from_pretrained(model_dir).hidden_size:
        pytest.skip("same shapes")
    bad = make_peft_adapter(model_dir, str(tmp_path / "bad"), ["q_proj"], 2, 4, 1)
    # Corrupt the shape of one tensor.
    from safetensors.torch import load_file, save_file

    st = load_file(os.path.join(bad, "adapter_model.safetensors"))
    key = next(k for k in st if "lora_A" in k)
    st[key] = torch.zeros(2, 7)
    save_file(st, os.path.join(bad, "adapter_model.safetensors"))
    with pytest.raises(CheckpointError, match=str(tmp_path / "bad")):
        engine.load_policy("bad", bad, "lora")
    assert "bad" not in engine.policies
