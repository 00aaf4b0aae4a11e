"""Synthetic OPT, Falcon, GPTBigCode and MPT checkpoints of ~125M parameters (GPT-2-small shapes: hidden 768,
12 layers, 12 heads, MLP 3072) with random fp16 weights, written as HuggingFace folders.

`flexserve bench throughput` and `bench/hf_compare.py --model DIR` on them show each architecture's prefill and
decode speed on this machine: speed does not depend on the weights' values, so random weights are enough and no
download is needed. Usage: python3 bench/make_arch_models.py [OUT_DIR (default models/synthetic)]
"""
import os
import sys

import torch
from transformers import (FalconConfig, FalconForCausalLM, GPTBigCodeConfig, GPTBigCodeForCausalLM, MptConfig,
                          MptForCausalLM, OPTConfig, OPTForCausalLM)

out = sys.argv[1] if len(sys.argv) > 1 else "models/synthetic"
models = {
    # OPT-125m's own config.
    "opt-125m": (OPTForCausalLM, OPTConfig(hidden_size=768, num_hidden_layers=12, ffn_dim=3072, num_attention_heads=12,
                                           vocab_size=50272, max_position_embeddings=2048)),
    # Falcon-7B's layout (multi-query, parallel attention and MLP, RoPE) at GPT-2-small size.
    "falcon-125m": (FalconForCausalLM, FalconConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                                    multi_query=True, parallel_attn=True, new_decoder_architecture=False,
                                                    alibi=False, vocab_size=65024)),
    # SantaCoder / StarCoder's layout (multi-query) at GPT-2-small size.
    "starcoder-125m": (GPTBigCodeForCausalLM, GPTBigCodeConfig(n_embd=768, n_layer=12, n_head=12, multi_query=True,
                                                               vocab_size=49152, n_positions=2048,
                                                               bos_token_id=0, eos_token_id=0)),
    # MPT-7B's layout (ALiBi, no biases) at GPT-2-small size.
    "mpt-125m": (MptForCausalLM, MptConfig(d_model=768, n_layers=12, n_heads=12, expansion_ratio=4, vocab_size=50368,
                                           max_seq_len=2048)),
}
torch.manual_seed(0)
for name, (cls, config) in models.items():
    path = os.path.join(out, name)
    if os.path.exists(os.path.join(path, "config.json")):
        print(f"{path}: already there")
        continue
    model = cls(config).to(torch.float16)
    model.save_pretrained(path, safe_serialization=True)
    print(f"wrote {path}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")
