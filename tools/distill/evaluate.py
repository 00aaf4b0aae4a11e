#!/usr/bin/env python3
"""Acceptance of SSMs under greedy speculative decoding (SpecInfer, greedy verification).

Simulation: greedy speculative decoding emits exactly the LLM's greedy continuation, so the LLM's
greedy tokens ref[0..N) are computed once per prompt (N = --new-tokens, stopping at EOS). Then, from
t = 0: every SSM of the configuration drafts a token tree from prompt + ref[:t] (widths per depth,
e.g. 1,1,3,1,1,1,1,1: at depth 3 the top-3 children, each extended greedily); the trees are merged
by shared prefixes; the LLM accepts the longest root path whose tokens equal its greedy tokens
(ref[t], ref[t+1], ...) and adds its own next token (the bonus). t advances by accepted + 1 (capped
at N), one LLM step is counted. tokens/step = N_total / LLM steps.

The SSM reads input ids >= K as OOV_ID (common.py) and can only draft ids < K.
"""
import argparse, json, sys, time

import torch

from common import EOS_ID, load_llm, load_ssm, map_oov


@torch.no_grad()
def llm_greedy(llm, prompts, n, dev, batch=64):
    refs = []
    for b in range(0, len(prompts), batch):
        chunk = prompts[b:b + batch]
        L = max(len(p) for p in chunk)
        inp = torch.full((len(chunk), L), EOS_ID, dtype=torch.long)
        att = torch.zeros_like(inp)
        for r, p in enumerate(chunk):
            inp[r, L - len(p):] = torch.tensor(p); att[r, L - len(p):] = 1
        out = llm.generate(input_ids=inp.to(dev), attention_mask=att.to(dev), max_new_tokens=n, do_sample=False,
                           eos_token_id=EOS_ID, pad_token_id=EOS_ID)[:, L:].cpu().tolist()
        for g in out:
            refs.append(g[:g.index(EOS_ID) + 1] if EOS_ID in g else g)
    return refs


@torch.no_grad()
def last_logits(ssm, rows, dev):
    """Logits after the last token of each row (rows: token lists; right padding, causal)."""
    K = ssm.config.vocab_size
    L = max(len(r) for r in rows)
    x = torch.full((len(rows), L), EOS_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        x[i, :len(r)] = torch.tensor(r)
    x = map_oov(x.to(dev), K)
    h = ssm.model(input_ids=x).last_hidden_state
    last = torch.tensor([len(r) - 1 for r in rows], device=dev)
    h = h[torch.arange(len(rows), device=dev), last]
    return ssm.lm_head(h).float()


def draft_paths(ssm, prefixes, widths, dev, max_width=0):
    """For each prefix, the root-to-node paths of the SSM's token tree, drafted as the engine's Drafter
    does: at depth d every frontier node gets its top-widths[d] children (all of them join the tree);
    the children, best cumulative log-probability first, are cut to max_width (0: no cap) to form the
    next frontier."""
    front = [(i, [], 0.0) for i in range(len(prefixes))]
    out = [[] for _ in prefixes]
    for w in widths:
        if not front:
            break
        lg = last_logits(ssm, [prefixes[i] + p for i, p, _ in front], dev).log_softmax(-1)
        top = lg.topk(w, -1)
        vals, idx = top.values.cpu().tolist(), top.indices.cpu().tolist()
        per = {}
        for r, (i, p, sc) in enumerate(front):
            for c in range(w):
                per.setdefault(i, []).append((p + [idx[r][c]], sc + vals[r][c]))
        front = []
        for i, kids in per.items():
            out[i] += [p for p, _ in kids]
            kids.sort(key=lambda x: -x[1])
            if max_width:
                kids = kids[:max_width]
            front += [(i, p, sc) for p, sc in kids]
    return out


def lookup_paths(tokens, length, candidates=2, longest=4, shortest=2):
    """The engine's PromptLookup (Sources/FlexServe/Speculative/PromptLookup.swift)."""
    n = len(tokens)
    if length <= 0 or n <= shortest:
        return []
    for m in range(min(longest, n - 1), shortest - 1, -1):
        found = []
        end = n - 1
        suffix = tokens[n - m:]
        while end >= m and len(found) < candidates:
            if tokens[end - m:end] == suffix:
                copy = tokens[end:min(n, end + length)]
                if not any(f[:1] == copy[:1] for f in found):
                    found.append(copy)
            end -= 1
        if found:
            return found
    return []


def simulate(ssms, widths, prompts, refs, dev, max_width=0, lookup=0):
    n = len(prompts)
    t, steps, acc_hist, nodes = [0] * n, [0] * n, [], []
    while True:
        act = [i for i in range(n) if t[i] < len(refs[i])]
        if not act:
            break
        prefixes = [prompts[i] + refs[i][:t[i]] for i in act]
        trees = [draft_paths(s, prefixes, widths, dev, max_width) for s in ssms]
        if lookup:
            trees.append([lookup_paths(p, lookup) for p in prefixes])
        nodes.append(sum(len({tuple(p[:d + 1]) for tr in trees for p in tr[j] for d in range(len(p))}) for j in range(len(act))) / len(act))
        for j, i in enumerate(act):
            target = refs[i][t[i]:]
            best = 0
            for tr in trees:
                for path in tr[j]:
                    k = 0
                    while k < len(path) and k < len(target) and path[k] == target[k]:
                        k += 1
                    best = max(best, k)
            emit = min(best + 1, len(refs[i]) - t[i])
            acc_hist.append(best)
            t[i] += emit
            steps[i] += 1
    total = sum(len(r) for r in refs)
    D = len(widths)
    return {"tokens_per_step": total / sum(steps), "llm_steps": sum(steps), "tokens": total,
            "mean_accepted": sum(acc_hist) / len(acc_hist),
            "p_accept_ge_depth": [round(sum(a >= d for a in acc_hist) / len(acc_hist), 4) for d in range(1, D + 1)],
            "mean_tree_nodes": round(sum(nodes) / len(nodes), 1)}


def _prod(v):
    r = 1
    for x in v:
        r *= x
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", default="work/eval_items.json")
    ap.add_argument("--gguf-dir", default=None)
    ap.add_argument("--ssm", action="append", default=[], help="name=folder (repeatable)")
    ap.add_argument("--config", action="append", required=True,
                    help="label:ssm1+ssm2:widths[:max_width[:lookup]], e.g. tree-a+b:a+b:1,1,3,1,1,1,1,1 or "
                         "wide:a+b:3,3,3,3,3,3,3,3:6:6 (widths = children per frontier node at each depth, max_width = "
                         "frontier cap as --max-tree-width, lookup = prompt-lookup tokens; ssms may be empty) (repeatable)")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--refs-cache", default=None, help="json file to save/load the LLM greedy tokens")
    ap.add_argument("--out", default=None)
    ap.add_argument("--ssm-fp32", action="store_true", help="SSM forwards in full fp32 (default: TF32 matmuls)")
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    items = json.load(open(a.items))[:a.n]
    prompts = [it["ids"] for it in items]
    t0 = time.time()
    refs = None
    if a.refs_cache:
        try:
            refs = json.load(open(a.refs_cache))
        except FileNotFoundError:
            pass
    if refs is None:
        llm = load_llm(a.gguf_dir, dev)
        refs = llm_greedy(llm, prompts, a.new_tokens, dev)
        del llm
        if a.refs_cache:
            json.dump(refs, open(a.refs_cache, "w"))
    print(f"LLM greedy refs: {sum(len(r) for r in refs)} tokens, {time.time() - t0:.1f}s", file=sys.stderr)
    # The SSMs' forwards (the whole prefix again at every depth) dominate: TF32 makes wide trees affordable.
    torch.backends.cuda.matmul.allow_tf32 = not a.ssm_fp32
    ssms = {}
    for s in a.ssm:
        name, path = s.split("=", 1)
        ssms[name] = load_ssm(path, dev)
    res = {"prompts": len(prompts), "new_tokens": a.new_tokens, "results": {}}
    for c in a.config:
        f = c.split(":")
        label, names, widths = f[0], f[1], [int(w) for w in f[2].split(",")]
        mw = int(f[3]) if len(f) > 3 else 0
        lk = int(f[4]) if len(f) > 4 else 0
        names = [nm for nm in names.split("+") if nm]
        t1 = time.time()
        r = simulate([ssms[nm] for nm in names], widths, prompts, refs, dev, mw, lk)
        r.update({"ssms": names, "widths": widths, "max_width": mw, "lookup": lk, "seconds": round(time.time() - t1, 1)})
        res["results"][label] = r
        print(f"{label:>14}: {r['tokens_per_step']:.3f} tokens/step  nodes {r['mean_tree_nodes']}  mean accepted {r['mean_accepted']:.3f}  "
              f"P(acc>=d) {r['p_accept_ge_depth']}", file=sys.stderr, flush=True)
        if a.out:  # after every configuration: a run cut short keeps what it measured
            json.dump(res, open(a.out, "w"), indent=1)
    if a.out:
        json.dump(res, open(a.out, "w"), indent=1)
    print(json.dumps({k: round(v["tokens_per_step"], 3) for k, v in res["results"].items()}))


if __name__ == "__main__":
    main()
