#!/usr/bin/env python3
"""Test fixture for the engine's GGUF draft-model path (Tests/FlexServeModelsTests/DraftGGUFTests.swift):
a tiny random LLaMA SSM with a trimmed vocabulary written by gguf_export.write_gguf (Q8_0, no tokenizer,
OOV input id 3) into Tests/Fixtures/draft-gguf/model.gguf, and transformers' logits of the dequantised
model in reference.json. Run from tools/distill: python3 make_draft_fixture.py"""
import json, os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gguf_export import write_gguf

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../Tests/Fixtures/draft-gguf")
os.makedirs(out, exist_ok=True)
cfg = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, tie_word_embeddings=True, rms_norm_eps=1e-5,
                  max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=2)
cfg.rope_parameters = {"rope_theta": 100000.0, "rope_type": "default"}
torch.manual_seed(3)
m = LlamaForCausalLM(cfg).eval()
with torch.no_grad():
    for p in m.parameters():
        p.normal_(0, 0.2)
    for n, p in m.named_parameters():
        if "norm" in n:
            p.uniform_(0.5, 1.5)
m.tie_weights()
deq = write_gguf(m, os.path.join(out, "model.gguf"), "Q8_0", oov_id=3, name="tiny-draft")
m.load_state_dict(deq, strict=False)
m.tie_weights()
prompt = [1, 5, 17, 42, 3, 88, 95, 60, 7]
with torch.no_grad():
    logits = m(input_ids=torch.tensor([prompt])).logits[0]
json.dump({"prompt_ids": prompt, "vocab_size": cfg.vocab_size, "oov_input_token_id": 3,
           "logits": [[round(float(v), 6) for v in row] for row in logits]}, open(os.path.join(out, "reference.json"), "w"))
print("wrote", out, os.path.getsize(os.path.join(out, "model.gguf")), "bytes")
