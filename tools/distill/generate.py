#!/usr/bin/env python3
"""Run the LLM over the training prompts and record its continuations (the distillation data).

Greedy for items with sample=False, temperature sampling (top-k off, top-p off) for sample=True.
Prompts are batched by length with left padding. Output: an .npz (see common.save_gen) with the
full token sequence (prompt + continuation, EOS kept) per item, the prompt length and a flag
(bit 0: sampled, bit 1: chat-templated).
"""
import argparse, gzip, json, random, sys, time

import torch

from common import EOS_ID, load_llm, save_gen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", default="work/train_items.json")
    ap.add_argument("--gguf-dir", default=None)
    ap.add_argument("--out", default="work/gen.npz")
    ap.add_argument("--max-new", type=int, default=192)
    ap.add_argument("--batch", type=int, default=384)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--greedy-first", action="store_true", help="run all greedy batches before the sampled ones")
    ap.add_argument("--time-budget", type=float, default=0, help="stop starting batches after this many seconds")
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(a.seed)
    items = json.load(gzip.open(a.items) if a.items.endswith(".gz") else open(a.items))
    if a.limit:
        items = items[:a.limit]
    llm = load_llm(a.gguf_dir, dev)
    t0 = time.time()
    seqs, plens, flags = [None] * len(items), [0] * len(items), [0] * len(items)
    ntok = 0
    plan = []  # (sample, item indices): length-sorted batches, run in a shuffled order
    for sample in (False, True):
        idx = [i for i, it in enumerate(items) if it["sample"] == sample]
        idx.sort(key=lambda i: len(items[i]["ids"]))
        plan += [(sample, idx[b:b + a.batch]) for b in range(0, len(idx), a.batch)]
    random.Random(a.seed).shuffle(plan)
    if a.greedy_first:
        plan.sort(key=lambda p: p[0])  # stable: greedy (False) batches first, each group still shuffled
    done = []
    for bn, (sample, chunk) in enumerate(plan):
        if a.time_budget and time.time() - t0 > a.time_budget:
            print(f"time budget reached after {bn} of {len(plan)} batches", file=sys.stderr)
            break
        L = max(len(items[i]["ids"]) for i in chunk)
        inp = torch.full((len(chunk), L), EOS_ID, dtype=torch.long)
        att = torch.zeros((len(chunk), L), dtype=torch.long)
        for r, i in enumerate(chunk):
            ids = items[i]["ids"]
            inp[r, L - len(ids):] = torch.tensor(ids)
            att[r, L - len(ids):] = 1
        kw = dict(do_sample=True, temperature=a.temperature, top_k=0, top_p=1.0) if sample else dict(do_sample=False)
        with torch.no_grad():
            out = llm.generate(input_ids=inp.to(dev), attention_mask=att.to(dev), max_new_tokens=a.max_new,
                               eos_token_id=EOS_ID, pad_token_id=EOS_ID, **kw)
        gen = out[:, L:].cpu().tolist()
        for r, i in enumerate(chunk):
            g = gen[r]
            if EOS_ID in g:
                g = g[:g.index(EOS_ID) + 1]
            done.append(i)
            seqs[i] = list(items[i]["ids"]) + g
            plens[i] = len(items[i]["ids"])
            flags[i] = int(sample) | (int(items[i]["chat"]) << 1)
            ntok += len(g)
        print(f"sample={sample} batch {bn}: L={L} {time.time() - t0:.1f}s, {ntok} generated tokens",
              file=sys.stderr, flush=True)
    done.sort()
    seqs, plens, flags = [seqs[i] for i in done], [plens[i] for i in done], [flags[i] for i in done]
    save_gen(a.out, seqs, plens, flags)
    print(json.dumps({"sequences": len(seqs), "sampled": sum(f & 1 for f in flags), "generated_tokens": ntok, "prompt_tokens": sum(plens),
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
