#!/usr/bin/env python3
"""Make a tiny random stand-in for the LLM (same vocab/hidden/heads, 2 layers) in DISTILL_LLM_CACHE
format, so that the whole pipeline can be smoke-tested in seconds (device_run.sh smoke)."""
import json, os, sys

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

out = sys.argv[1]
cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=2,
                  num_attention_heads=9, num_key_value_heads=3, head_dim=64, tie_word_embeddings=True,
                  rms_norm_eps=1e-5, max_position_embeddings=8192, bos_token_id=1, eos_token_id=2, pad_token_id=2)
cfg.rope_parameters = {"rope_theta": 100000.0, "rope_type": "default"}
torch.manual_seed(0)
m = LlamaForCausalLM(cfg)
os.makedirs(out, exist_ok=True)
save_file({k: v.contiguous() for k, v in m.state_dict().items() if k != "lm_head.weight"},
          os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
c = cfg.to_dict(); c["architectures"] = ["LlamaForCausalLM"]
json.dump(c, open(os.path.join(out, "config.json"), "w"), indent=1)
