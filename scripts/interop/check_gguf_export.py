#!/usr/bin/env python3
"""Reads `llama-lora export-gguf` files back with llama.cpp's own Python reader (gguf==0.19.0,
numpy) and checks them against the model folder they came from.

    check_gguf_export.py --self-test BUILD/llama-lora

makes a tiny model with `llama-lora init --preset tiny`, a variant with Llama-3 rope_scaling
and tied embeddings, and a random rsLoRA adapter (written here with numpy), exports them with
every --outtype, and checks:
  - metadata keys, their GGUF value types and values (config.json, tokenizer.json,
    tokenizer_config.json, generation_config.json);
  - tensor names, shapes (GGUF order, innermost first) and types (1-D F32; Q8_0 -> F16 where
    rows are not a multiple of 32);
  - tensor values against the safetensors data: q/k rows reordered as llama.cpp's
    convert_hf_to_gguf.py does (reshape(n_head, 2, hd/2, in).swapaxes(1, 2)), F32 / BF16
    exact, F16 = numpy's float16 rounding, Q8_0 bytes = gguf.quants.quantize and the
    dequantized values within Q8_0's error (d/2 per value, plus the f16 rounding of d);
  - rope_freqs.weight = the converter's Llama-3 factors;
  - the adapter GGUF: general.type adapter, alpha = scale * r, lora_a = A, lora_b = B with
    q/k rows reordered;
  - `--model BASE --adapter A` gives the same tensors as `merge` followed by export.
Exit 0 when everything holds, 1 on the first mismatch. Without the gguf package it exits 77
(ctest's skip), except under CI (CI set in the environment), where it fails.
"""
import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFValueType as V
except ImportError as error:  # pragma: no cover - depends on the machine
    print(f"check_gguf_export: needs gguf==0.19.0 and numpy ({error}); "
          "pip install gguf==0.19.0", file=sys.stderr)
    sys.exit(1 if os.environ.get("CI") else 77)

OUTTYPES = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0}
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}


class Mismatch(Exception):
    pass


def expect(ok, what):
    if not ok:
        raise Mismatch(what)


def run(*args):
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise Mismatch(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


# --- safetensors, read and written with numpy (no torch, no safetensors package) -----------

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]])
        if info["dtype"] == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        out[name] = raw.astype(np.float32).reshape(info["shape"])
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# --- what llama.cpp's converters do, written independently of our C++ ----------------------

def permute(weights, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute (rows of q with n_head, k with n_kv_head)."""
    shape = weights.shape
    return (weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:])
            .swapaxes(1, 2).reshape(shape))


def llama3_rope_factors(config):
    s = config["rope_scaling"]
    dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    freqs = 1.0 / (np.float32(config["rope_theta"]) **
                   (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    old = s["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / s["low_freq_factor"], old / s["high_freq_factor"]
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(s["factor"])
        else:
            smooth = (old / wavelen - s["low_freq_factor"]) / (s["high_freq_factor"] -
                                                               s["low_freq_factor"])
            factors.append(1 / ((1 - smooth) / s["factor"] + smooth))
    return np.array(factors, dtype=np.float32)


def gguf_names(config):
    """HF name -> (GGUF name, rows to permute with how many heads or None)."""
    names = {"model.embed_tokens.weight": ("token_embd.weight", None),
             "model.norm.weight": ("output_norm.weight", None)}
    if not config.get("tie_word_embeddings"):
        names["lm_head.weight"] = ("output.weight", None)
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    for i in range(config["num_hidden_layers"]):
        hf, blk = f"model.layers.{i}.", f"blk.{i}."
        names[hf + "input_layernorm.weight"] = (blk + "attn_norm.weight", None)
        names[hf + "post_attention_layernorm.weight"] = (blk + "ffn_norm.weight", None)
        for module, name, rope in [("self_attn.q_proj", "attn_q", heads),
                                   ("self_attn.k_proj", "attn_k", kv_heads),
                                   ("self_attn.v_proj", "attn_v", None),
                                   ("self_attn.o_proj", "attn_output", None),
                                   ("mlp.gate_proj", "ffn_gate", None),
                                   ("mlp.up_proj", "ffn_up", None),
                                   ("mlp.down_proj", "ffn_down", None)]:
            names[hf + module + ".weight"] = (blk + name + ".weight", rope)
    return names


# --- checks -----------------------------------------------------------------------------------

def field(reader, key, types):
    expect(key in reader.fields, f"missing key {key}")
    f = reader.fields[key]
    expect(f.types == types, f"{key}: types {[t.name for t in f.types]}, want "
                             f"{[t.name for t in types]}")
    return f.contents()


def check_value(reader, key, types, want):
    got = field(reader, key, types)
    if isinstance(want, float):
        expect(abs(got - want) <= 1e-6 * max(1.0, abs(want)), f"{key} = {got}, want {want}")
    else:
        expect(got == want, f"{key} = {str(got)[:80]}, want {str(want)[:80]}")


def expected_type(shape, outtype):
    if len(shape) == 1:
        return Q.F32
    if outtype == "q8_0" and shape[-1] % 32 != 0:
        return Q.F16
    return OUTTYPES[outtype]


def check_tensor_values(name, tensor, want, outtype_type):
    """`want`: the f32 values in PyTorch order that the tensor must encode."""
    expect(tensor.tensor_type == outtype_type,
           f"{name}: type {tensor.tensor_type.name}, want {outtype_type.name}")
    expect([int(d) for d in tensor.shape] == list(reversed(want.shape)),
           f"{name}: GGUF shape {list(tensor.shape)} for PyTorch shape {list(want.shape)}")
    got = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(want.shape)
    if tensor.tensor_type in (Q.F32, Q.BF16):
        # BF16: the source rounded to bf16 (exact for bf16 models).
        reference = want if tensor.tensor_type == Q.F32 else gguf.quants.dequantize(
            gguf.quants.quantize(want, Q.BF16), Q.BF16).reshape(want.shape)
        expect(np.array_equal(got, reference), f"{name}: values differ from the source")
    elif tensor.tensor_type == Q.F16:
        expect(np.array_equal(got, want.astype(np.float16).astype(np.float32)),
               f"{name}: values differ from the source rounded to f16")
    else:
        ours = np.asarray(tensor.data).tobytes()
        theirs = gguf.quants.quantize(want, Q.Q8_0).tobytes()
        expect(ours == theirs, f"{name}: Q8_0 bytes differ from gguf.quants.quantize")
        blocks = want.reshape(-1, 32)
        d = np.abs(blocks).max(axis=1, keepdims=True) / 127.0
        error = np.abs(got.reshape(-1, 32) - blocks)
        expect(np.all(error <= d * 0.5 + d * 127.0 / 2048.0 + 1e-12),
               f"{name}: Q8_0 round trip beyond d/2 + f16 rounding of d "
               f"(worst {float(error.max())})")


def check_model_gguf(path, model_dir, outtype):
    config = json.load(open(os.path.join(model_dir, "config.json")))
    reader = gguf.GGUFReader(path)
    U32, F32 = [V.UINT32], [V.FLOAT32]
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    check_value(reader, "general.architecture", [V.STRING], "llama")
    check_value(reader, "general.type", [V.STRING], "model")
    for key, value in [("context_length", config["max_position_embeddings"]),
                       ("embedding_length", config["hidden_size"]),
                       ("block_count", config["num_hidden_layers"]),
                       ("feed_forward_length", config["intermediate_size"]),
                       ("attention.head_count", config["num_attention_heads"]),
                       ("attention.head_count_kv", config["num_key_value_heads"]),
                       ("vocab_size", config["vocab_size"]),
                       ("rope.dimension_count", head_dim)]:
        check_value(reader, "llama." + key, U32, value)
    check_value(reader, "llama.rope.freq_base", F32, float(config["rope_theta"]))
    check_value(reader, "llama.attention.layer_norm_rms_epsilon", F32,
                float(np.float32(config["rms_norm_eps"])))
    check_value(reader, "general.file_type", U32, FILE_TYPES[outtype])

    # Tokenizer.
    tokenizer = json.load(open(os.path.join(model_dir, "tokenizer.json")))
    tokenizer_config = json.load(open(os.path.join(model_dir, "tokenizer_config.json")))
    generation = json.load(open(os.path.join(model_dir, "generation_config.json")))
    tokens = [f"[PAD{i}]" for i in range(config["vocab_size"])]
    types = [5] * config["vocab_size"]
    for token, i in tokenizer["model"]["vocab"].items():
        tokens[i], types[i] = token, 1
    for added in tokenizer["added_tokens"]:
        i = added["id"]
        tokens[i] = added["content"]
        special = added["special"] or (added["content"].startswith("<|") and
                                       added["content"].endswith("|>"))
        types[i] = 3 if special else 4
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    check_value(reader, "tokenizer.ggml.model", [V.STRING], "gpt2")
    check_value(reader, "tokenizer.ggml.pre", [V.STRING], "llama-bpe")
    check_value(reader, "tokenizer.ggml.tokens", [V.ARRAY, V.STRING], tokens)
    check_value(reader, "tokenizer.ggml.token_type", [V.ARRAY, V.INT32], types)
    check_value(reader, "tokenizer.ggml.merges", [V.ARRAY, V.STRING], merges)
    eos = generation["eos_token_id"]
    check_value(reader, "tokenizer.ggml.bos_token_id", U32, generation["bos_token_id"])
    check_value(reader, "tokenizer.ggml.eos_token_id", U32, eos[0] if isinstance(eos, list)
                else eos)
    eot = [a["id"] for a in tokenizer["added_tokens"] if a["content"] == "<|eot_id|>"]
    check_value(reader, "tokenizer.ggml.eot_token_id", U32, eot[0])
    check_value(reader, "tokenizer.ggml.add_bos_token", [V.BOOL], True)
    check_value(reader, "tokenizer.chat_template", [V.STRING], tokenizer_config["chat_template"])

    # Tensors.
    weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    tensors = {t.name: t for t in reader.tensors}
    names = gguf_names(config)
    want_names = {gguf_name for gguf_name, _ in names.values()}
    scaling = config.get("rope_scaling")
    if scaling and scaling.get("rope_type") == "llama3":
        want_names.add("rope_freqs.weight")
        check_tensor_values("rope_freqs.weight", tensors["rope_freqs.weight"],
                            llama3_rope_factors(config), Q.F32)
    expect(set(tensors) == want_names, f"tensors {sorted(set(tensors) ^ want_names)} differ")
    for hf_name, (gguf_name, heads) in names.items():
        want = weights[hf_name]
        if heads is not None:
            want = permute(want, heads)
        check_tensor_values(gguf_name, tensors[gguf_name], want,
                            expected_type(want.shape, outtype))
    return reader


def make_adapter(dir, config, r=4, alpha=8.0, seed=3):
    """A random rsLoRA adapter on all seven projections, with B non-zero."""
    rng = np.random.default_rng(seed)
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    shapes = {"self_attn.q_proj": (q, hidden), "self_attn.k_proj": (kv, hidden),
              "self_attn.v_proj": (kv, hidden), "self_attn.o_proj": (hidden, q),
              "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden),
              "mlp.down_proj": (hidden, inter)}
    tensors = {}
    for i in range(config["num_hidden_layers"]):
        for module, (out, inp) in shapes.items():
            prefix = f"base_model.model.model.layers.{i}.{module}"
            tensors[prefix + ".lora_A.weight"] = rng.standard_normal((r, inp)).astype(np.float32)
            tensors[prefix + ".lora_B.weight"] = rng.standard_normal((out, r)).astype(np.float32)
    os.makedirs(dir)
    write_safetensors(os.path.join(dir, "adapter_model.safetensors"), tensors)
    adapter_config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
                      "lora_dropout": 0.0, "bias": "none", "use_rslora": True,
                      "target_modules": [m.split(".")[1] for m in shapes],
                      "base_model_name_or_path": None}
    json.dump(adapter_config, open(os.path.join(dir, "adapter_config.json"), "w"))
    return tensors, alpha / math.sqrt(r) * r


def check_adapter_gguf(path, tensors, alpha, config, outtype):
    reader = gguf.GGUFReader(path)
    check_value(reader, "general.architecture", [V.STRING], "llama")
    check_value(reader, "general.type", [V.STRING], "adapter")
    check_value(reader, "adapter.type", [V.STRING], "lora")
    check_value(reader, "adapter.lora.alpha", [V.FLOAT32], float(np.float32(alpha)))
    by_name = {t.name: t for t in reader.tensors}
    names = gguf_names(config)
    seen = set()
    for name, values in tensors.items():
        hf = name.replace("base_model.model.", "").replace(".lora_A", "").replace(".lora_B", "")
        gguf_name, heads = names[hf]
        if ".lora_A." in name:
            gguf_name += ".lora_a"
        else:
            gguf_name += ".lora_b"
            if heads is not None:
                values = permute(values, heads)
        expect(gguf_name in by_name, f"{path}: no tensor {gguf_name}")
        check_tensor_values(gguf_name, by_name[gguf_name], values,
                            expected_type(values.shape, outtype))
        seen.add(gguf_name)
    expect(seen == set(by_name), f"{path}: extra tensors {sorted(set(by_name) - seen)}")


def self_test(binary):
    tmp = tempfile.mkdtemp(prefix="ll-gguf-check-")
    try:
        tiny = os.path.join(tmp, "tiny")
        run(binary, "init", "--preset", "tiny", "-o", tiny)
        # The same weights with Llama-3 rope_scaling and tied embeddings (lm_head ignored).
        tied = os.path.join(tmp, "tiny-llama3-tied")
        shutil.copytree(tiny, tied)
        config = json.load(open(os.path.join(tiny, "config.json")))
        config.update({"tie_word_embeddings": True, "rope_scaling": {
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}})
        json.dump(config, open(os.path.join(tied, "config.json"), "w"), indent=2)
        checked = 0
        for model in (tiny, tied):
            for outtype in OUTTYPES:
                out = os.path.join(tmp, f"{os.path.basename(model)}-{outtype}.gguf")
                run(binary, "export-gguf", "--model", model, "-o", out, "--outtype", outtype)
                check_model_gguf(out, model, outtype)
                checked += 1

        tiny_config = json.load(open(os.path.join(tiny, "config.json")))
        adapter = os.path.join(tmp, "adapter")
        tensors, alpha = make_adapter(adapter, tiny_config)
        for outtype in OUTTYPES:
            out = os.path.join(tmp, f"adapter-{outtype}.gguf")
            run(binary, "export-gguf", "--adapter", adapter, "--base_config", tiny, "-o", out,
                "--outtype", outtype)
            check_adapter_gguf(out, tensors, alpha, tiny_config, outtype)
            checked += 1

        merged_gguf = os.path.join(tmp, "merged.gguf")
        run(binary, "export-gguf", "--model", tiny, "--adapter", adapter, "-o", merged_gguf,
            "--outtype", "f32")
        merged_dir = os.path.join(tmp, "merged")
        run(binary, "merge", "--model", tiny, "--adapter", adapter, "-o", merged_dir)
        check_model_gguf(merged_gguf, merged_dir, "f32")
        base = {t.name: np.array(t.data) for t in gguf.GGUFReader(
            os.path.join(tmp, "tiny-f32.gguf")).tensors}
        merged = {t.name: np.array(t.data) for t in gguf.GGUFReader(merged_gguf).tensors}
        expect(not np.array_equal(base["blk.0.attn_q.weight"], merged["blk.0.attn_q.weight"]),
               "the merged export's attn_q equals the base's")
        expect(np.array_equal(base["token_embd.weight"], merged["token_embd.weight"]),
               "the merged export's token_embd differs from the base's")
        leftovers = [n for n in os.listdir(tmp) if n.startswith(".tmp-") or ".tmp-" in n]
        expect(not leftovers, f"temporary files left behind: {leftovers}")
        checked += 1
        print(f"check_gguf_export: {checked} GGUF files read back with gguf "
              f"{getattr(gguf, '__version__', '0.19.0')}: keys, types, shapes and values match")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", metavar="LLAMA_LORA", required=True,
                        help="the llama-lora binary to test")
    args = parser.parse_args()
    try:
        self_test(args.self_test)
    except Mismatch as error:
        print(f"check_gguf_export: FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
