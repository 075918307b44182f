"""absp_torch.gguf_import on small GGUF files written here with the gguf package's own writer: a
llama with Q4_1 weights and a ChatML template (SmolLM2's layout in miniature), and the inputs it
must refuse with one clear line each."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from absp_torch import gguf_import  # noqa: E402

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
HIDDEN, FFN, HEADS, KV, LAYERS = 32, 64, 4, 2, 2


def byte_tokens():
    alphabet = gguf_import.byte_level_alphabet()
    by_byte = sorted(alphabet.items(), key=lambda kv: kv[1])
    return [c for c, _ in by_byte]


def write_gguf(path, *, arch="llama", pre="smollm", tok_model="gpt2", linear_type="Q4_1", raw=None, seed=0):
    """A tiny model: byte-level vocabulary plus ChatML tokens, random weights quantized as `linear_type`."""
    rng = np.random.default_rng(seed)
    tokens = SPECIAL + byte_tokens() + ["Ġt", "Ġth", "he"]
    merges = ["Ġ t", "Ġt h", "h e"]
    vocab = len(tokens)
    w = gguf.GGUFWriter(path, arch)
    w.add_name("tiny test model")
    w.add_block_count(LAYERS)
    w.add_context_length(128)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model(tok_model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([3] * len(SPECIAL) + [1] * (vocab - len(SPECIAL)))
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)

    def linear(name, rows, cols):
        data = rng.normal(0, 0.2, size=(rows, cols)).astype(np.float32)
        if raw is not None and name == "blk.0.attn_q.weight":
            qtype = getattr(gguf.GGMLQuantizationType, raw)
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            w.add_tensor(name, np.zeros((rows, cols // block * size), dtype=np.uint8), raw_dtype=qtype)
            return
        if linear_type == "F32":
            w.add_tensor(name, data)
        else:
            qtype = getattr(gguf.GGMLQuantizationType, linear_type)
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    w.add_tensor("token_embd.weight", rng.normal(0, 0.2, size=(vocab, HIDDEN)).astype(np.float32))
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        linear(f"blk.{i}.attn_q.weight", HIDDEN, HIDDEN)
        linear(f"blk.{i}.attn_k.weight", HIDDEN // HEADS * KV, HIDDEN)
        linear(f"blk.{i}.attn_v.weight", HIDDEN // HEADS * KV, HIDDEN)
        linear(f"blk.{i}.attn_output.weight", HIDDEN, HIDDEN)
        linear(f"blk.{i}.ffn_gate.weight", FFN, HIDDEN)
        linear(f"blk.{i}.ffn_up.weight", FFN, HIDDEN)
        linear(f"blk.{i}.ffn_down.weight", HIDDEN, FFN)
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_gguf(str(tmp_path_factory.mktemp("gguf") / "tiny.Q4_1.gguf"))


def run(capsys, *args):
    code = gguf_import.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_converts_a_q4_1_llama_with_the_fixes(tiny, tmp_path, capsys):
    out = tmp_path / "model"
    code, stdout, err = run(capsys, tiny, out)
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert sorted(os.listdir(out)) == ["absp-import.json", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert "quantization_config" not in config
    assert config["eos_token_id"] == 2 and config["bos_token_id"] == 1
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 2
    tc = json.loads((out / "tokenizer_config.json").read_text())
    assert tc["chat_template"] == CHATML and tc["eos_token"] == "<|im_end|>"
    tok = json.loads((out / "tokenizer.json").read_text())
    assert tok["pre_tokenizer"] == gguf_import.SINGLE_DIGITS
    assert result["source"]["tensor_types"] == {"F32": 1 + 2 * LAYERS + 1, "Q4_1": 7 * LAYERS}
    assert result["check"]["max_logit_difference"] == 0.0

    # The weights are gguf's own dequantization of the stored blocks (v, o and the MLP are not
    # permuted by the llama layout, so they compare directly).
    from safetensors.numpy import load_file

    written = load_file(str(out / "model.safetensors"))
    reader = gguf.GGUFReader(tiny)
    stored = {t.name: t for t in reader.tensors}
    for ours, theirs in [("model.layers.0.self_attn.v_proj.weight", "blk.0.attn_v.weight"), ("model.layers.1.mlp.down_proj.weight", "blk.1.ffn_down.weight")]:
        t = stored[theirs]
        want = gguf.quants.dequantize(t.data, t.tensor_type).reshape(written[ours].shape)
        assert np.array_equal(written[ours], want)

    # The written tokenizer splits numerals one by one, as llama.cpp's "smollm" rule does.
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(str(out))
    pieces = gguf_import.split_pieces(t, "x ² 12 ٣٤")
    assert pieces == ["x", " ", "²", " ", "1", "2", " ", "٣", "٤"]
    assert t.eos_token == "<|im_end|>"


def test_bfloat16_and_an_existing_folder(tiny, tmp_path, capsys):
    out = tmp_path / "bf16"
    code, stdout, err = run(capsys, tiny, out, "--dtype", "bfloat16")
    assert code == 0, err
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "np" if False else "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.bfloat16 for k in f.keys())
    code, _, err = run(capsys, tiny, out)
    assert code == 2 and err.strip() == f"error: {out}: already exists; choose another folder or remove it (nothing was written)"


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("architecture", "architecture 'gpt2' is not supported (this import reads llama, qwen2)"),
        ("quantization", "tensor blk.0.attn_q.weight is stored as Q8_1, which this import cannot dequantize"),
        ("tokenizer", "tokenizer model 'llama' is not supported"),
        ("pre-tokenizer", "pre-tokenizer 'jais' is not one whose splitting rule this import knows"),
    ],
)
def test_refuses_what_it_cannot_read(kind, expected, tmp_path, capsys):
    path = str(tmp_path / f"{kind}.gguf")
    if kind == "architecture":
        write_gguf(path, arch="gpt2")
    elif kind == "quantization":
        write_gguf(path, raw="Q8_1")
    elif kind == "tokenizer":
        write_gguf(path, tok_model="llama")
    else:
        write_gguf(path, pre="jais")
    code, stdout, err = run(capsys, path, tmp_path / "out")
    assert code == 2 and stdout == ""
    assert err.startswith(f"error: {path}: {expected}"), err
    assert not (tmp_path / "out").exists()


def test_refuses_truncated_and_non_gguf_files(tiny, tmp_path, capsys):
    data = open(tiny, "rb").read()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) - 100])
    code, _, err = run(capsys, cut, tmp_path / "out")
    assert code == 2 and err.startswith(f"error: {cut}: truncated or damaged: not a complete GGUF file ({len(data) - 100} bytes;"), err
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(data[:40])
    code, _, err = run(capsys, header_only, tmp_path / "out")
    assert code == 2 and err.startswith(f"error: {header_only}: truncated or damaged: not a complete GGUF file (40 bytes;"), err
    other = tmp_path / "model.bin"
    other.write_bytes(b"PK\x03\x04not a gguf")
    code, _, err = run(capsys, other, tmp_path / "out")
    assert code == 2 and err.strip() == f"error: {other}: not a GGUF file (it does not start with the GGUF magic)"
    code, _, err = run(capsys, tmp_path / "missing.gguf", tmp_path / "out")
    assert code == 2 and err.strip() == f"error: {tmp_path / 'missing.gguf'}: no such file"
    assert not (tmp_path / "out").exists()


def test_llama3_rule_groups_digits_by_three(tmp_path, capsys):
    path = write_gguf(str(tmp_path / "l3.gguf"), pre="llama-bpe")
    code, _, err = run(capsys, path, tmp_path / "out")
    assert code == 0, err
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    assert gguf_import.split_pieces(t, "in 1234567 ways") == ["in", " ", "123", "456", "7", " ways"]
