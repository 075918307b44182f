"""Tiny random Qwen2 and Llama checkpoints built with transformers' own config classes."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

torch.set_num_threads(2)


def make_checkpoint(out_dir: str, arch: str, seed: int = 0, tie: bool = False) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=tie, eos_token_id=2,
                  bos_token_id=1, pad_token_id=0, rms_norm_eps=1e-6)
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, rope_theta=10000.0))
    else:
        model = LlamaForCausalLM(LlamaConfig(**common, rope_theta=10000.0, attention_bias=False, mlp_bias=False))
    # Larger than the default init so that the model's distributions are far from uniform.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0, 0.2)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory):
    return make_checkpoint(str(tmp_path_factory.mktemp("qwen2")), "qwen2", seed=1)


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    return make_checkpoint(str(tmp_path_factory.mktemp("llama")), "llama", seed=2, tie=True)


@pytest.fixture(params=["qwen2", "llama"])
def model_dir(request, qwen2_dir, llama_dir):
    return qwen2_dir if request.param == "qwen2" else llama_dir


def make_peft_adapter(model_dir: str, out_dir: str, targets, rank: int, alpha: float, seed: int) -> str:
    """An adapter made by PEFT itself (get_peft_model + save_pretrained), B nonzero."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
