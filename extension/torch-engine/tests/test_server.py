"""The engine process as the TypeScript client sees it: JSON lines in, JSON lines out, every failure an
error message naming the file or the value, and the process still serving afterwards."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

PACKAGE = os.path.join(os.path.dirname(__file__), "..")


class Proc:
    def __init__(self, env=None, torchrun: int = 0):
        e = dict(os.environ, PYTHONPATH=PACKAGE, **(env or {}))
        if torchrun:
            args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(torchrun), "-m", "absp_torch", "serve", "--device", "cpu"]
            e["OMP_NUM_THREADS"] = "1"
        else:
            args = [sys.executable, "-m", "absp_torch", "serve"]
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
        self.n = 0

    def send_line(self, line: str) -> dict:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = self.p.stdout.readline()
        assert out, f"no response; stderr: {self.p.stderr.read()[-2000:]}"
        return json.loads(out)

    def __call__(self, op: str, **fields) -> dict:
        self.n += 1
        r = self.send_line(json.dumps({"op": op, "id": self.n, **fields}))
        assert r["id"] == self.n
        return r

    def close(self) -> int:
        self.p.stdin.close()
        code = self.p.wait(timeout=300)
        self.p.stdout.close()
        self.p.stderr.close()
        return code


@pytest.fixture(scope="module")
def proc():
    """One engine process for the tests of this file that need a plain one: each test leaves it
    serving (that is part of what they test), and starting Python with torch costs seconds."""
    p = Proc()
    yield p
    assert p.close() == 0  # EOF on stdin ends the process, cleanly


def test_hello_open_and_bad_lines_keep_the_server_serving(proc, qwen2_dir):
    hello = proc("hello")
    assert hello["ok"] and hello["protocol"] == 1 and hello["versions"]["torch"] == torch.__version__
    assert proc("logprobs", rows=[])["error"].startswith("no model is open")
    bad = proc.send_line("{not json")
    assert bad["ok"] is False and "not valid JSON" in bad["error"]
    assert proc("frobnicate")["error"] == "unknown op 'frobnicate'"
    opened = proc("open", model=qwen2_dir, device="cpu", dtype="float32")
    assert opened["ok"], opened
    assert opened["info"]["architecture"] == "Qwen2ForCausalLM" and opened["info"]["vocabSize"] == 61
    r = proc("logprobs", rows=[{"ids": [1, 2, 3], "policy": None}, {"ids": [4], "policy": None}])
    assert r["logprobs"][0][0] is None and len(r["logprobs"][0]) == 3 and r["logprobs"][1] == [None]
    r = proc("generate", requests=[{"prompt": [1, 2], "policy": None, "seed": 1}], settings={"maxNewTokens": 3, "temperature": 0})
    assert r["ok"] and len(r["results"][0]["tokens"]) == 3
    assert proc("logprobs", rows=[{"ids": [1, 2, 99], "policy": None}])["kind"] == "request"


def checkpoint_copy(src: str, dst: str) -> str:
    shutil.copytree(src, dst)
    return dst


def test_checkpoints_that_are_refused_each_name_the_file(proc, qwen2_dir, tmp_path):
    # Custom code: auto_map in config.json.
    custom = checkpoint_copy(qwen2_dir, str(tmp_path / "custom"))
    cfg = json.load(open(os.path.join(custom, "config.json")))
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    json.dump(cfg, open(os.path.join(custom, "config.json"), "w"))
    r = proc("open", model=custom)
    assert r["kind"] == "checkpoint" and os.path.join(custom, "config.json") in r["error"] and "custom code" in r["error"] and "trust_remote_code=False" in r["error"]
    # Pickle only.
    pickled = checkpoint_copy(qwen2_dir, str(tmp_path / "pickled"))
    os.remove(os.path.join(pickled, "model.safetensors"))
    with open(os.path.join(pickled, "pytorch_model.bin"), "wb") as f:
        f.write(b"\x80\x04not really a pickle")
    r = proc("open", model=pickled)
    assert r["kind"] == "checkpoint" and os.path.join(pickled, "pytorch_model.bin") in r["error"] and "pickle" in r["error"]
    # Unknown architecture.
    other = checkpoint_copy(qwen2_dir, str(tmp_path / "other"))
    cfg = json.load(open(os.path.join(other, "config.json")))
    cfg["model_type"], cfg["architectures"] = "gpt2", ["GPT2LMHeadModel"]
    json.dump(cfg, open(os.path.join(other, "config.json"), "w"))
    r = proc("open", model=other)
    assert r["kind"] == "checkpoint" and "unsupported architecture GPT2LMHeadModel" in r["error"] and os.path.join(other, "config.json") in r["error"]
    # A directory that is not there, and a config.json that is not JSON.
    assert str(tmp_path / "nope") in proc("open", model=str(tmp_path / "nope"))["error"]
    broken = checkpoint_copy(qwen2_dir, str(tmp_path / "broken"))
    open(os.path.join(broken, "config.json"), "w").write("{")
    assert "is not valid JSON" in proc("open", model=broken)["error"]
    # The server still works.
    assert proc("open", model=qwen2_dir)["ok"]
    # A pickled adapter is refused the same way.
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}))
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    r = proc("load_policy", name="a", dir=str(adapter), kind="lora")
    assert r["kind"] == "checkpoint" and str(adapter / "adapter_model.bin") in r["error"] and "pickle" in r["error"]


def test_out_of_memory_is_an_error_with_suggestions(qwen2_dir, monkeypatch):
    """The server's own request handling, in this process (the fault is read per request; a second
    engine process would only add the seconds of importing torch again)."""
    from absp_torch.server import Server

    server = Server()
    try:
        assert server.respond({"op": "open", "id": 1, "model": qwen2_dir})["ok"]
        monkeypatch.setenv("ABSP_TORCH_FAULT", "oom:generate")
        r = server.respond({"op": "generate", "id": 2, "requests": [{"prompt": [1], "policy": None, "seed": 0}], "settings": {"maxNewTokens": 2}})
        assert r["id"] == 2 and r["ok"] is False and r["kind"] == "out-of-memory"
        for hint in ("smaller batch", "gradient_checkpointing", "more GPUs"):
            assert hint in r["error"]
        assert server.respond({"op": "logprobs", "id": 3, "rows": [{"ids": [1, 2], "policy": None}]})["ok"]
    finally:
        server.engine.close()


def test_non_finite_numbers_travel_as_strings(proc, qwen2_dir):
    assert proc("open", model=qwen2_dir)["ok"]
    assert proc("create_policy", name="p", spec={"kind": "lora", "rank": 2, "targets": ["q_proj"]})["ok"]
    s = {"ids": [1, 5, 9], "policy": "p", "weights": [0, 1, 1], "advantages": [0, 1, 1], "oldLogprobs": [0, "NaN", 0], "refLogprobs": [0, 0, 0]}
    r = proc("train_step", samples=[s], settings={"optimizers": {"p": {"kind": "sgd", "lr": 0.1}}})
    assert r["ok"] and r["report"]["policies"]["p"]["loss"] == "NaN" and r["report"]["policies"]["p"]["skipped"] is True


def pg_samples(n_rows: int, policies=("attacker", "defender")):
    rows = []
    for k in range(n_rows):
        ids = [1 + (k * 7 + i * 3) % 50 for i in range(5 + k % 4)]
        n = len(ids)
        w = [0.0, 0.0] + [1.0 / (n_rows * (n - 2))] * (n - 2)
        rows.append({"ids": ids, "policy": policies[0] if k % 3 else policies[1], "weights": w, "advantages": [0.0, 0.0] + [(-1) ** k * 0.7] * (n - 2),
                     "oldLogprobs": [0.0] * 2 + [-3.0] * (n - 2), "refLogprobs": [0.0] * 2 + [-3.2] * (n - 2)})
    return rows


def adamw(*names):
    return {n: {"kind": "adamw", "lr": 0.01, "weightDecay": 0.0, "clipNorm": 1.0, "warmupSteps": 0} for n in names}


def ok(r: dict) -> dict:
    assert r["ok"], r
    return r


def layout_script(p: Proc, model: str, out, **open_fields) -> dict:
    """The same requests in any layout (one process, DDP, FSDP); what a layout must not change.

    LoRA: two steps of both role adapters (7 rows dealt unevenly, 16 tokens per pass), then mixed
    generation, scoring and next-token scoring; the saved attacker loaded back as another policy. Full (shared-full): a step, its optimiser state saved
    and loaded back, a second step from the loaded state, and scoring with it."""
    info = ok(p("open", model=model, microBatchTokens=16, **open_fields))["info"]
    # What each policy trains: the adapter's own tensors only, the base frozen.
    trainable = {name: ok(p("create_policy", name=name, spec={"kind": "lora", "rank": 4, "alpha": 8, "targets": ["q_proj", "v_proj", "down_proj"], "seed": seed}))["parameters"]
                 for name, seed in (("attacker", 1), ("defender", 2))}
    samples = pg_samples(7)
    settings = {"clipEps": 0.2, "klK1": 0.0, "klK3": 0.05, "optimizers": adamw("attacker", "defender")}
    reports = [ok(p("train_step", samples=samples, settings=settings))["report"] for _ in range(2)]
    who = ["attacker", "defender", None, "attacker", "defender"]
    gen = ok(p("generate", requests=[{"prompt": [1, 2, 3], "policy": n, "seed": i} for i, n in enumerate(who)], settings={"maxNewTokens": 4, "temperature": 1.0}))["results"]
    rows = [{"ids": [1, 5, 9, 14, 3, 7][: 3 + i], "policy": n} for i, n in enumerate(who)]
    lps = ok(p("logprobs", rows=rows))["logprobs"]
    nxt = ok(p("next_token_logprobs", rows=rows, candidates=[2, 7, 40]))["logprobs"]
    ok(p("save_policy", name="attacker", dir=str(out / "attacker")))
    # The saved adapter loads back (PEFT's load_adapter, onto the sharded base under FSDP) and scores as the trained one.
    attacker_only = ok(p("logprobs", rows=[{**r, "policy": "attacker"} for r in rows]))["logprobs"]
    ok(p("load_policy", name="reloaded", dir=str(out / "attacker"), kind="lora"))
    reloaded = ok(p("logprobs", rows=[{**r, "policy": "reloaded"} for r in rows]))["logprobs"]
    ok(p("drop_policy", name="reloaded"))
    trainable["full"] = ok(p("create_policy", name="full", spec={"kind": "full"}))["parameters"]
    full_settings = {"clipEps": 0.2, "klK1": 0.0, "klK3": 0.05, "optimizers": adamw("full")}
    full_samples = pg_samples(5, ("full", "full"))
    full_reports = [ok(p("train_step", samples=full_samples, settings=full_settings))["report"]]
    ok(p("save_optimizer", name="full", dir=str(out / "opt")))
    ok(p("load_optimizer", name="full", dir=str(out / "opt")))
    full_reports.append(ok(p("train_step", samples=full_samples, settings=full_settings))["report"])
    full_lps = ok(p("logprobs", rows=[{**r, "policy": "full"} for r in rows]))["logprobs"]
    fp = ok(p("save_policy", name="full", dir=str(out / "full")))["fingerprint"]
    return {"info": info, "trainable": trainable, "attackerOnly": attacker_only, "reloaded": reloaded, "reports": reports, "generated": gen, "logprobs": lps, "next": nxt, "fullReports": full_reports, "fullLogprobs": full_lps, "fullFingerprint": fp}


@pytest.fixture(scope="module")
def one_process(proc, qwen2_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    return out, layout_script(proc, qwen2_dir, out)


def relative_difference(a_file: str, b_file: str) -> float:
    from safetensors.torch import load_file

    a, b = load_file(a_file), load_file(b_file)
    assert a.keys() == b.keys()
    num = sum(float((a[k].double() - b[k].double()).norm() ** 2) for k in a) ** 0.5
    den = sum(float(a[k].double().norm() ** 2) for k in a) ** 0.5
    return num / den


def close_rows(a: list, b: list, tol: float) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            assert (u is None and v is None) or abs(u - v) < tol, (u, v)


def test_torchrun_two_processes_take_the_step_one_process_takes_with_ddp_and_with_fsdp(one_process, qwen2_dir, tmp_path):
    """Two processes (gloo), each with half the rows, in both layouts (one torchrun, opened twice):
    DDP, and FSDP (fully_shard) with gradient checkpointing. Each gives the adapters, the full
    policy, its optimiser state, the log-probs and the sampled tokens of one process."""
    one_dir, one = one_process
    p = Proc(torchrun=2)
    try:
        assert p("hello")["worldSize"] == 2
        runs = {"ddp": layout_script(p, qwen2_dir, tmp_path / "ddp")}
        # Recomputing activations in the backward (FSDP's all-gathers around it) changes nothing.
        runs["fsdp"] = layout_script(p, qwen2_dir, tmp_path / "fsdp", fsdp=True, gradientCheckpointing=True)
    finally:
        assert p.close() == 0
    for layout, two in runs.items():
        out = tmp_path / layout
        fsdp = layout == "fsdp"
        info = two["info"]
        assert info["worldSize"] == 2 and info["fsdp"] is fsdp and info["baseParameters"] == one["info"]["baseParameters"]
        # FSDP: rank 0 holds its half of the base (fully_shard splits each tensor's rows across the ranks).
        held = info["baseParametersHeld"] / info["baseParameters"]
        assert (0.45 < held < 0.55) if fsdp else held == 1, (layout, held)
        for what in ("attacker/adapter_model.safetensors", "full/model.safetensors", "opt/full.safetensors"):
            assert relative_difference(str(one_dir / what), str(out / what)) < 1e-5, (layout, what)
        for r1, r2 in zip(one["reports"] + one["fullReports"], two["reports"] + two["fullReports"]):
            for name in r1["policies"]:
                assert r1["policies"][name]["loss"] == pytest.approx(r2["policies"][name]["loss"], rel=1e-5), (layout, name)
                assert r1["policies"][name]["gradNorm"] == pytest.approx(r2["policies"][name]["gradNorm"], rel=1e-4), (layout, name)
        assert two["trainable"] == one["trainable"], layout
        assert two["trainable"]["attacker"] < info["baseParameters"] // 10 and two["trainable"]["full"] == info["baseParameters"]
        for key in ("logprobs", "next", "fullLogprobs", "attackerOnly", "reloaded"):
            close_rows(one[key], two[key], 1e-5)
        close_rows(two["reloaded"], two["attackerOnly"], 1e-6)
        # Rollouts dealt across ranks come back in order, the tokens one process samples, each with its policy's fingerprint.
        assert [g["tokens"] for g in two["generated"]] == [g["tokens"] for g in one["generated"]], layout
        assert [g["fingerprint"] is None for g in two["generated"]] == [False, False, True, False, False]
        assert two["generated"][0]["fingerprint"] == two["reports"][-1]["policies"]["attacker"]["fingerprint"]
        assert two["fullFingerprint"] == two["fullReports"][-1]["policies"]["full"]["fingerprint"]


def test_fsdp_in_one_process_is_one_clear_error(proc, qwen2_dir):
    r = proc("open", model=qwen2_dir, fsdp=True)
    assert r["ok"] is False and r["kind"] == "request"
    assert "fsdp shards the weights across processes and needs 2 or more" in r["error"] and "torchrun" in r["error"]
    assert proc("open", model=qwen2_dir)["ok"]
