#!/usr/bin/env python3
"""Round-2 items: every ShareGPT training prompt chat-templated (greedy) that the round-1 data
(gen_prev.npz) does not already hold greedily, then one sampled (T=0.8) chat-templated continuation
of every training prompt. Same templating/truncation as prepare_data.py."""
import gzip, json, sys
from transformers import AutoTokenizer
sys.path.insert(0, ".")
from common import load_gen

tok = AutoTokenizer.from_pretrained("work/tokenizer")
train = json.load(open("work/sharegpt_train.json"))
seqs, plens, flags = load_gen(sys.argv[1])
have = {tuple(s[:p].tolist()) for s, p, f in zip(seqs, plens, flags) if f == 2}  # greedy chat

def chat_ids(text, limit=256):
    body = tok(text, add_special_tokens=False)["input_ids"][:limit]
    return list(tok.apply_chat_template([{"role": "user", "content": tok.decode(body)}],
                                        add_generation_prompt=True, tokenize=True, return_dict=False))

greedy, sampled = [], []
for p in train:
    ids = chat_ids(p)
    if tuple(ids) not in have:
        greedy.append({"ids": ids, "src": "sharegpt", "chat": True, "sample": False})
    sampled.append({"ids": ids, "src": "sharegpt", "chat": True, "sample": True})
items = greedy + sampled
json.dump(items, gzip.open(sys.argv[2], "wt"))
print(len(train), "prompts;", len(have), "greedy-chat already;", len(greedy), "new greedy;", len(sampled), "sampled")
