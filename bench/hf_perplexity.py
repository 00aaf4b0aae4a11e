#!/usr/bin/env python3
"""HF transformers' sliding-window perplexity on the same tokens and windows as
`flexserve perplexity --max-tokens 1023 datasets/shakespeare.json` (the reference for the README)."""
import torch, math
from transformers import AutoModelForCausalLM, AutoTokenizer
torch.set_num_threads(2)
d, f = "models", "SmolLM2-135M-Instruct.Q4_1.gguf"
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
ids = tok(open("datasets/shakespeare.json").read())["input_ids"][:1023]
nll, n, prev, begin = 0.0, 0, 0, 0
with torch.inference_mode():
    while prev < len(ids):
        end = min(begin + 512, len(ids))
        logits = model(torch.tensor([ids[begin:end]])).logits[0].double()
        lp = torch.log_softmax(logits, -1)
        for t in range(max(prev, begin + 1), end):
            nll -= lp[t - 1 - begin, ids[t]].item(); n += 1
        prev = end
        if end == len(ids): break
        begin += 256
print("HF perplexity", math.exp(nll / n), "over", n, "first ids", ids[:5])
