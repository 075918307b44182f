"""A GGUF file into a Hugging Face model directory, through transformers' own GGUF reader.

    python -m absp_torch.gguf_import FILE OUT [--dtype float32|bfloat16] [--eos TOKEN]

transformers dequantizes the tensors and rebuilds config and tokenizer; this module checks the file
before that (a GGUF we can read: a complete file, a supported architecture, tensor types the gguf
package dequantizes, a BPE tokenizer whose splitting rule we know), repairs what transformers'
conversion gets wrong, writes the directory atomically, and reloads what it wrote to check it:

- the pre-tokenizer: GGUF names the rule (`tokenizer.ggml.pre`) and transformers rebuilds only the
  GPT-2 one, so digits are not split one by one as SmolLM2 (llama.cpp's "smollm") and the StarCoder
  family do, and Llama 3's digit groups of three are lost; the written tokenizer.json gets the rule
  the model was trained with;
- the end of turn: a chat model stops at the token that closes its turn (`<|im_end|>` in ChatML), which
  is what config, generation config and tokenizer name as EOS, whatever the GGUF says;
- config.json loses transformers' `quantization_config` (the weights written are plain floats), and
  tokenizer_config.json carries the chat template (transformers 5 writes it to a separate file).

Progress goes to stderr; the last line on stdout is one JSON object describing the directory. A
problem with the input is one line `error: ...` on stderr and exit status 2.
"""

import argparse
import copy
import datetime
import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
warnings.filterwarnings("ignore")


class ImportProblem(Exception):
    """Something wrong with the input or the environment: reported as one line, no traceback."""


# GGUF architecture -> the transformers class the engines run.
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}

# Tensor types the gguf package dequantizes (and transformers with it). Others (Q8_1, Q8_K, integer
# tensors, ...) are refused before anything is loaded.
READABLE_TYPES = {
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
    "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0",
}

BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
# Every numeral on its own (llama.cpp's "\p{N}"), then GPT-2's regex. Written as a Split on \p{N}
# rather than HF's Digits(individual_digits): the Rust library's Digits splits every Unicode numeral,
# but @huggingface/tokenizers (JavaScript) splits only 0-9 there; a Split on \p{N} reads the same in both.
SINGLE_DIGITS = {
    "type": "Sequence",
    "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Isolated", "invert": False}, BYTE_LEVEL],
}
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3 = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
        {**BYTE_LEVEL, "use_regex": False},
    ],
}
# llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) -> the Hugging Face pre-tokenizer of the same rule.
PRE_TOKENIZERS = {
    "default": BYTE_LEVEL,
    "gpt-2": BYTE_LEVEL,
    "gpt2": BYTE_LEVEL,
    "smollm": SINGLE_DIGITS,
    "starcoder": SINGLE_DIGITS,
    "refact": SINGLE_DIGITS,
    "codeshell": SINGLE_DIGITS,
    "llama-bpe": LLAMA3,
    "llama3": LLAMA3,
}

# Tokens that close a turn in the chat formats we know: the model's EOS for generation.
END_OF_TURN = ["<|im_end|>", "<|eot_id|>", "<|end|>"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def field_value(reader, key):
    field = reader.fields.get(key)
    if field is None:
        return None
    try:
        return field.contents()
    except Exception:  # an unreadable field is as good as none
        return None


def inspect_gguf(path: str) -> dict:
    """Reads the header and checks everything that can be checked without loading tensors."""
    if not os.path.isfile(path):
        raise ImportProblem(f"{path}: no such file")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ImportProblem(f"{path}: not a GGUF file (it does not start with the GGUF magic)")
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ImportProblem("the Python package `gguf` is missing from this environment: run `absp torch setup` (it installs gguf)") from None
    try:
        reader = GGUFReader(path)
    except Exception as e:  # the reader maps every tensor: a file cut short fails here
        raise ImportProblem(f"{path}: truncated or damaged: not a complete GGUF file ({size} bytes; the reader says {type(e).__name__}: {e})") from None
    tensors = [(t.name, t.tensor_type.name) for t in reader.tensors]
    arch = field_value(reader, "general.architecture")
    if arch not in ARCHITECTURES:
        raise ImportProblem(f"{path}: architecture {arch!r} is not supported (this import reads {', '.join(sorted(ARCHITECTURES))})")
    unreadable = sorted({(ty, name) for name, ty in tensors if ty not in READABLE_TYPES})
    if unreadable:
        ty, name = unreadable[0]
        raise ImportProblem(f"{path}: tensor {name} is stored as {ty}, which this import cannot dequantize (it reads {', '.join(sorted(READABLE_TYPES))})")
    tok_model = field_value(reader, "tokenizer.ggml.model")
    if tok_model != "gpt2":
        raise ImportProblem(f"{path}: tokenizer model {tok_model!r} is not supported (this import reads byte-level BPE tokenizers, 'gpt2')")
    pre = field_value(reader, "tokenizer.ggml.pre") or "default"
    if pre not in PRE_TOKENIZERS:
        raise ImportProblem(f"{path}: pre-tokenizer {pre!r} is not one whose splitting rule this import knows ({', '.join(sorted(PRE_TOKENIZERS))})")
    types = {}
    for _, ty in tensors:
        types[ty] = types.get(ty, 0) + 1
    return {
        "architecture": arch,
        "name": field_value(reader, "general.name"),
        "license": field_value(reader, "general.license"),
        "pre_tokenizer": pre,
        "tensor_types": types,
        "bytes": size,
    }


def fix_tokenizer_json(path: str, pre: str) -> bool:
    """Puts the model's own pre-tokenizer into tokenizer.json; True when it changed."""
    with open(path, encoding="utf-8") as f:
        tok = json.load(f)
    wanted = PRE_TOKENIZERS[pre]
    if tok.get("pre_tokenizer") == wanted:
        return False
    tok["pre_tokenizer"] = wanted
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=2)
    return True


def end_of_turn(tokenizer, explicit):
    vocab = tokenizer.get_vocab()
    if explicit is not None:
        if explicit not in vocab:
            raise ImportProblem(f"--eos {explicit!r} is not a token of this tokenizer")
        return explicit
    template = tokenizer.chat_template or ""
    for t in END_OF_TURN:
        if t in vocab and t in template:
            return t
    return tokenizer.eos_token


def convert(src: str, out: str, dtype_name: str, eos: str | None) -> dict:
    info = inspect_gguf(src)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ImportProblem(f"{out}: already exists; choose another folder or remove it (nothing was written)")
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        transformers.utils.logging.disable_progress_bar()
    except ImportError as e:
        raise ImportProblem(f"this Python lacks {e.name}: run `absp torch setup` to create the environment with torch and transformers") from None
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    folder, name = os.path.split(os.path.abspath(src))
    log(f"reading {src} ({info['architecture']}, {info['bytes']} bytes; tensor types {info['tensor_types']})")
    source_sha = sha256_file(src)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except ImportProblem:
        raise
    except Exception as e:
        raise ImportProblem(f"{src}: transformers could not read it ({type(e).__name__}: {e})") from None
    model.eval()
    eos_token = end_of_turn(tokenizer, eos)
    eos_id = tokenizer.convert_tokens_to_ids(eos_token)
    fixes = []
    if tokenizer.eos_token != eos_token:
        fixes.append(f"eos token {tokenizer.eos_token!r} -> {eos_token!r}")
    tokenizer.eos_token = eos_token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = eos_token

    config = model.config
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
        fixes.append("removed quantization_config (the weights are written dequantized)")
    # A plain model of the same class holds the dequantized weights: one loaded from GGUF stays
    # marked as quantized, and transformers refuses to save it.
    plain = type(model)(config).eval()
    plain.load_state_dict(model.state_dict(), strict=True)
    model = plain
    # GGUF's general.name arrives as a config attribute; the source is recorded in absp-import.json.
    if hasattr(config, "_model_name_or_path"):
        delattr(config, "_model_name_or_path")
    config.architectures = [ARCHITECTURES[info["architecture"]]]
    config.eos_token_id = eos_id
    config.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token is not None:
        config.bos_token_id = tokenizer.bos_token_id
    config.dtype = dtype_name
    generation = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=eos_id, pad_token_id=config.pad_token_id)

    parent = os.path.dirname(os.path.abspath(out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        # A copy in the written dtype (converting in place would round the rotary tables too).
        copy.deepcopy(model).to(dtype).save_pretrained(tmp, safe_serialization=True)
        generation.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if fix_tokenizer_json(os.path.join(tmp, "tokenizer.json"), info["pre_tokenizer"]):
            fixes.append(f"pre-tokenizer set to llama.cpp's {info['pre_tokenizer']!r} rule")
        # The chat template lives in tokenizer_config.json, where every reader looks for it.
        tc_path = os.path.join(tmp, "tokenizer_config.json")
        with open(tc_path, encoding="utf-8") as f:
            tc = json.load(f)
        tc["chat_template"] = tokenizer.chat_template
        tc["eos_token"] = eos_token
        # The class every transformers release reads (5.x writes its own new name, which 4.x lacks).
        tc["tokenizer_class"] = "PreTrainedTokenizerFast"
        for key in ("is_local", "local_files_only", "backend"):
            tc.pop(key, None)
        with open(tc_path, "w", encoding="utf-8") as f:
            json.dump(tc, f, ensure_ascii=False, indent=2)
        jinja = os.path.join(tmp, "chat_template.jinja")
        if os.path.exists(jinja):
            os.remove(jinja)
        for f in os.listdir(tmp):
            os.chmod(os.path.join(tmp, f), 0o666 & ~umask)
        written = sorted(os.listdir(tmp))
        check = check_written(tmp, model, tokenizer, dtype, eos_id, info["pre_tokenizer"])
        meta = {
            "source": {"file": os.path.abspath(src), "sha256": source_sha, "bytes": info["bytes"], "name": info["name"], "license": info["license"], "tensor_types": info["tensor_types"]},
            "dtype": dtype_name,
            "architecture": ARCHITECTURES[info["architecture"]],
            "eos_token": eos_token,
            "fixes": fixes,
            "check": check,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        with open(os.path.join(tmp, "absp-import.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        if os.path.isdir(out):
            os.rmdir(out)  # empty, checked above
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"dir": os.path.abspath(out), "files": written + ["absp-import.json"], **meta}


DIGIT_PROBE = "In 2024, 3.14159 × 12 = 37.699; ²½ and ٣٤ too."


def check_written(folder: str, model, tokenizer, dtype, eos_id: int, pre: str) -> dict:
    """Reloads the written directory: same logits as the converted model, digits split, EOS, template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    text = tok.apply_chat_template([{"role": "user", "content": "What is 12 + 30?"}], tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for p in reference.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
        want = reference(ids).logits
        got = reloaded(ids).logits
    diff = float((want - got).abs().max())
    if diff > 1e-5:
        raise ImportProblem(f"{folder}: the written weights give logits {diff:.3g} away from the converted model's")
    if tok.eos_token_id != eos_id or reloaded.config.eos_token_id != eos_id:
        raise ImportProblem(f"{folder}: EOS is not {eos_id} after reloading")
    pieces = split_pieces(tok, DIGIT_PROBE)
    if PRE_TOKENIZERS[pre] is SINGLE_DIGITS:
        mixed = [p for p in pieces if len(p) > 1 and any(ch.isnumeric() for ch in p)]
        if mixed:
            raise ImportProblem(f"{folder}: the tokenizer does not split numerals one by one ({mixed[:3]})")
    return {"max_logit_difference": diff, "chat_prompt_tokens": int(ids.shape[1]), "digit_probe_pieces": len(pieces)}


def byte_level_alphabet() -> dict:
    """GPT-2's byte <-> printable character table, inverted: character -> byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(keep, chars)}


def split_pieces(tok, text: str) -> list:
    """The text as the tokenizer's pre-tokenizer splits it, each piece decoded back to characters."""
    alphabet = byte_level_alphabet()
    pieces = tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)
    return [bytes(alphabet[c] for c in piece).decode("utf-8", errors="replace") for piece, _ in pieces]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m absp_torch.gguf_import", description="a GGUF file into a Hugging Face model directory")
    parser.add_argument("file")
    parser.add_argument("out")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--eos", default=None, help="the token that ends a turn (default: the chat template's, e.g. <|im_end|>)")
    parser.add_argument("--inspect", action="store_true", help="only check the file and print what it holds")
    a = parser.parse_args(argv)
    try:
        result = inspect_gguf(a.file) if a.inspect else convert(a.file, a.out, a.dtype, a.eos)
    except ImportProblem as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
