"""A synthetic LLaMA with TinyLlama-1.1B's layer shapes (hidden 2048, 32 heads, 4 KV heads,
MLP 5632) but 6 layers and random fp16 weights, written as a HuggingFace folder.

`flexserve bench throughput` on it shows what the CPU decode kernels stream when each dispatch
moves megabytes (SmolLM2-135M's move 0.15-2 MB): the benchmark measures speed only, so random
weights are enough. Usage: python3 bench/make_wide_model.py [models/wide-llama-synthetic]
"""
import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file

out = sys.argv[1] if len(sys.argv) > 1 else "models/wide-llama-synthetic"
hidden, heads, kv_heads, mlp, layers, vocab = 2048, 32, 4, 5632, 6, 32000
head_dim = hidden // heads
rng = np.random.default_rng(0)


def w(*shape):
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)


tensors = {"model.embed_tokens.weight": w(vocab, hidden), "model.norm.weight": np.ones(hidden, np.float16)}
for l in range(layers):
    p = f"model.layers.{l}."
    tensors.update({
        p + "input_layernorm.weight": np.ones(hidden, np.float16),
        p + "post_attention_layernorm.weight": np.ones(hidden, np.float16),
        p + "self_attn.q_proj.weight": w(hidden, hidden),
        p + "self_attn.k_proj.weight": w(kv_heads * head_dim, hidden),
        p + "self_attn.v_proj.weight": w(kv_heads * head_dim, hidden),
        p + "self_attn.o_proj.weight": w(hidden, hidden),
        p + "mlp.gate_proj.weight": w(mlp, hidden),
        p + "mlp.up_proj.weight": w(mlp, hidden),
        p + "mlp.down_proj.weight": w(hidden, mlp),
    })
os.makedirs(out, exist_ok=True)
save_file(tensors, os.path.join(out, "model.safetensors"))
config = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden, "intermediate_size": mlp,
    "num_attention_heads": heads, "num_key_value_heads": kv_heads, "num_hidden_layers": layers, "vocab_size": vocab,
    "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
    "torch_dtype": "float16", "hidden_act": "silu",
}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
print(f"wrote {out}: {sum(t.size for t in tensors.values()) / 1e6:.0f}M parameters")
