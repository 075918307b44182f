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


@pytest.fixture
def proc():
    p = Proc()
    yield p
    p.close()


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


def test_out_of_memory_is_an_error_with_suggestions(qwen2_dir):
    p = Proc(env={"ABSP_TORCH_FAULT": "oom:generate"})
    try:
        assert p("open", model=qwen2_dir)["ok"]
        r = p("generate", requests=[{"prompt": [1], "policy": None, "seed": 0}], settings={"maxNewTokens": 2})
        assert r["ok"] is False and r["kind"] == "out-of-memory"
        for hint in ("smaller batch", "gradient_checkpointing", "more GPUs"):
            assert hint in r["error"]
        assert p("logprobs", rows=[{"ids": [1, 2], "policy": None}])["ok"]
    finally:
        p.close()


def test_non_finite_numbers_travel_as_strings(proc, qwen2_dir):
    assert proc("open", model=qwen2_dir)["ok"]
    assert proc("create_policy", name="p", spec={"kind": "lora", "rank": 2, "targets": ["q_proj"]})["ok"]
    s = {"ids": [1, 5, 9], "policy": "p", "weights": [0, 1, 1], "advantages": [0, 1, 1], "oldLogprobs": [0, "NaN", 0], "refLogprobs": [0, 0, 0]}
    r = proc("train_step", samples=[s], settings={"optimizers": {"p": {"kind": "sgd", "lr": 0.1}}})
    assert r["ok"] and r["report"]["policies"]["p"]["loss"] == "NaN" and r["report"]["policies"]["p"]["skipped"] is True


def test_eof_ends_the_process(qwen2_dir):
    p = Proc()
    assert p("hello")["ok"]
    assert p.close() == 0


def pg_samples(n_rows: int):
    rows = []
    for k in range(n_rows):
        ids = [1 + (k * 7 + i * 3) % 50 for i in range(5 + k % 4)]
        n = len(ids)
        w = [0.0, 0.0] + [1.0 / (n_rows * (n - 2))] * (n - 2)
        rows.append({"ids": ids, "policy": "attacker" if k % 3 else "defender", "weights": w, "advantages": [0.0, 0.0] + [(-1) ** k * 0.7] * (n - 2),
                     "oldLogprobs": [0.0] * 2 + [-3.0] * (n - 2), "refLogprobs": [0.0] * 2 + [-3.2] * (n - 2)})
    return rows


def run_steps(p: Proc, model: str, samples, steps: int = 2) -> tuple[dict, list]:
    assert p("open", model=model, microBatchTokens=16)["ok"]
    for name, seed in (("attacker", 1), ("defender", 2)):
        assert p("create_policy", name=name, spec={"kind": "lora", "rank": 4, "alpha": 8, "targets": ["q_proj", "v_proj", "down_proj"], "seed": seed})["ok"]
    settings = {"clipEps": 0.2, "klK1": 0.0, "klK3": 0.05, "optimizers": {n: {"kind": "adamw", "lr": 0.01, "weightDecay": 0.0, "clipNorm": 1.0, "warmupSteps": 0} for n in ("attacker", "defender")}}
    reports = []
    for _ in range(steps):
        r = p("train_step", samples=samples, settings=settings)
        assert r["ok"], r
        reports.append(r["report"])
    gen = p("generate", requests=[{"prompt": [1, 2, 3], "policy": n, "seed": i} for i, n in enumerate(["attacker", "defender", None, "attacker", "defender"])], settings={"maxNewTokens": 4, "temperature": 1.0})
    assert gen["ok"], gen
    return reports[-1], gen["results"]


def test_torchrun_two_processes_take_the_step_one_process_takes(qwen2_dir, tmp_path):
    """DDP (gloo) over 2 processes, each with half the rows, gives the adapters one process gives."""
    samples = pg_samples(7)
    one = Proc()
    try:
        r1, g1 = run_steps(one, qwen2_dir, samples)
        assert one("save_policy", name="attacker", dir=str(tmp_path / "one"))["ok"]
    finally:
        one.close()
    two = Proc(torchrun=2)
    try:
        assert two("hello")["worldSize"] == 2
        r2, g2 = run_steps(two, qwen2_dir, samples)
        assert two("save_policy", name="attacker", dir=str(tmp_path / "two"))["ok"]
    finally:
        assert two.close() == 0
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "one" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "two" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    num = sum(float((a[k] - b[k]).double().norm() ** 2) for k in a) ** 0.5
    den = sum(float(a[k].double().norm() ** 2) for k in a) ** 0.5
    assert num / den < 1e-5, num / den
    for name in ("attacker", "defender"):
        assert r1["policies"][name]["loss"] == pytest.approx(r2["policies"][name]["loss"], rel=1e-5)
        assert r1["policies"][name]["gradNorm"] == pytest.approx(r2["policies"][name]["gradNorm"], rel=1e-4)
    # Rollouts dealt across ranks come back in order, each with its policy's fingerprint.
    assert [g["fingerprint"] is None for g in g2] == [False, False, True, False, False]
    assert g2[0]["fingerprint"] == r2["policies"]["attacker"]["fingerprint"]
