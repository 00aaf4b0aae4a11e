#!/usr/bin/env python3
"""Distil an SSM from the LLM on the LLM's own outputs (generate.py), optionally boost-tuned.

Loss at every position t (predicting token t+1) of every sequence:
    w_t * KL( softmax(LLM logits[t, :K]) || softmax(SSM logits[t]) )
The teacher's distribution is renormalised over the K ids the SSM knows. w_t = 1 on the LLM's
continuation, --prompt-weight on the prompt. With --boost-from SSM1, w_t is multiplied by
(1 + --boost) wherever SSM1's argmax differs from the LLM's argmax (and the LLM's argmax is < K,
i.e. could be drafted at all): "collective boost-tuning" (SpecInfer section 3).

The LLM runs alongside (fp32, TF32 matmuls) and gives the exact logits on the fly, so no logits
are stored. Sequences are right-padded, so plain causal attention needs no mask.
"""
import argparse, json, math, os, random, sys, time

import torch
import torch.nn.functional as F

from common import EOS_ID, OOV_ID, load_gen, load_llm, load_ssm, make_ssm, map_oov


def batches(lens, max_tokens, rng):
    order = sorted(range(len(lens)), key=lambda i: lens[i])
    out, cur, curmax = [], [], 0
    for i in order:
        m = max(curmax, lens[i])
        if cur and m * (len(cur) + 1) > max_tokens:
            out.append(cur); cur, m = [], lens[i]
        cur.append(i); curmax = m
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def pad(seqs, idx, dev):
    L = max(len(seqs[i]) for i in idx)
    x = torch.full((len(idx), L), EOS_ID, dtype=torch.long)
    for r, i in enumerate(idx):
        x[r, :len(seqs[i])] = torch.as_tensor(seqs[i])
    return x.to(dev, non_blocking=True)


@torch.no_grad()
def teacher(llm, x, K, bf16=False):
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        h = llm.model(input_ids=x).last_hidden_state
    h = h.float()
    W = llm.lm_head.weight
    logits_k = h @ W[:K].t()
    # argmax over the full vocabulary: is it an id the SSM could draft?
    best_k = logits_k.max(-1)
    rest = (h @ W[K:].t()).max(-1).values
    full_arg = torch.where(rest > best_k.values, torch.full_like(best_k.indices, -1), best_k.indices)
    return logits_k, full_arg          # full_arg = -1 where the LLM's argmax is >= K


def weights(x, lens, plens, idx, prompt_w):
    B, L = x.shape
    t = torch.arange(L - 1, device=x.device)
    ln = torch.tensor([lens[i] for i in idx], device=x.device)[:, None]
    pl = torch.tensor([plens[i] for i in idx], device=x.device)[:, None]
    valid = (t[None] + 1 < ln).float()
    region = torch.where(t[None] >= pl - 1, 1.0, prompt_w)
    gen = (t[None] >= pl - 1).float() * valid
    return valid * region, gen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen", default="work/gen.npz")
    ap.add_argument("--gguf-dir", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--K", type=int, default=16384)
    ap.add_argument("--layers", default="0", help="LLM layers to initialise from, e.g. 0,1")
    ap.add_argument("--intermediate", type=int, default=0, help="MLP width (0: the LLM's)")
    ap.add_argument("--init-from", default=None, help="start from this SSM instead of the LLM's layers")
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--prompt-weight", type=float, default=0.2)
    ap.add_argument("--boost-from", default=None, help="SSM-1 folder: boost-tune on its misses")
    ap.add_argument("--boost", type=float, default=3.0)
    ap.add_argument("--val-frac", type=float, default=0.02)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for both forwards (losses in fp32)")
    ap.add_argument("--time-budget", type=float, default=0,
                    help="seconds: at step 40, shrink the schedule so training ends within this")
    ap.add_argument("--time-limit", type=float, default=0,
                    help="seconds: the LR schedule follows max(step/steps, elapsed/limit) and training stops "
                         "when either reaches 1 (a hard wall-clock bound with a schedule that still decays)")
    ap.add_argument("--eval-every", type=int, default=0, help="also validate every N steps")
    ap.add_argument("--val-max", type=int, default=400, help="validation sequences at most")
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)

    seqs, plens, flags = load_gen(a.gen)
    seqs = [s[:a.max_len] for s in seqs]
    lens = [len(s) for s in seqs]
    perm = list(range(len(seqs)))
    random.Random(123).shuffle(perm)
    nval = min(a.val_max, max(1, int(len(seqs) * a.val_frac)))
    # validation: LLM-generated sequences only (flag bit 2 marks real text, KD-only data)
    val_idx = [i for i in perm if not flags[i] & 4][:nval]
    vs = set(val_idx)
    tr_idx = [i for i in perm if i not in vs]

    llm = load_llm(a.gguf_dir, dev)
    for p in llm.parameters():
        p.requires_grad_(False)
    layers = [int(v) for v in a.layers.split(",")]
    ssm = load_ssm(a.init_from, dev).train() if a.init_from else make_ssm(llm, a.K, layers, a.intermediate or None).train()
    K = ssm.config.vocab_size
    boost_ssm = load_ssm(a.boost_from, dev) if a.boost_from else None
    nparams = sum(p.numel() for p in ssm.parameters())
    print(f"SSM: {ssm.config.num_hidden_layers} layers, K={K}, intermediate={ssm.config.intermediate_size}, "
          f"{nparams / 1e6:.2f}M params; train seqs {len(tr_idx)}, val {len(val_idx)}", file=sys.stderr)

    sub_lens = [lens[i] for i in tr_idx]
    steps_per_epoch = len(batches(sub_lens, a.batch_tokens, rng))
    total = int(steps_per_epoch * a.epochs)
    if a.max_steps:
        total = min(total, a.max_steps)
    opt = torch.optim.AdamW(ssm.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.0)
    T = [total]
    prog = [0.0]  # fraction of training done: steps or wall clock (--time-limit), whichever is further
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(prog[0], s / T[0]))))))

    def evaluate():
        ssm.eval()
        agree = top3 = n = miss_oov = 0.0
        with torch.no_grad():
            for b in batches([lens[i] for i in val_idx], a.batch_tokens, random.Random(0)):
                idx = [val_idx[j] for j in b]
                x = pad(seqs, idx, dev)
                _, full_arg = teacher(llm, x, K)
                s = ssm(input_ids=map_oov(x, K)).logits[:, :-1].float()
                _, gen = weights(x, lens, plens, idx, 0.0)
                fa = full_arg[:, :-1]
                t3 = s.topk(3, -1).indices
                agree += ((t3[..., 0] == fa).float() * gen).sum().item()
                top3 += ((t3 == fa[..., None]).any(-1).float() * gen).sum().item()
                miss_oov += ((fa < 0).float() * gen).sum().item()
                n += gen.sum().item()
        ssm.train()
        return {"val_top1_agree": agree / n, "val_top3_agree": top3 / n, "val_llm_argmax_oov": miss_oov / n,
                "val_tokens": int(n)}

    t0 = time.time()
    step, log = 0, []
    boosted_frac = []
    ep = 0
    while step < T[0] and prog[0] < 1:
        for b in batches(sub_lens, a.batch_tokens, rng):
            if a.time_limit:
                prog[0] = (time.time() - t0) / a.time_limit
            if step >= T[0] or prog[0] >= 1:
                break
            if a.time_budget and step == 10:
                t10 = time.time()
            if a.time_budget and step == 40:  # steady-state rate (the first steps include warm-up)
                per = (time.time() - t10) / 30
                T[0] = max(41, min(T[0], int((a.time_budget - (time.time() - t0)) / per) + 40))
                print(f"{per:.3f}s/step: {T[0]} steps ({T[0] / steps_per_epoch:.2f} epochs)", file=sys.stderr)
            idx = [tr_idx[j] for j in b]
            x = pad(seqs, idx, dev)
            tl, full_arg = teacher(llm, x, K, a.bf16)
            tl, full_arg = tl[:, :-1], full_arg[:, :-1]
            w, gen = weights(x, lens, plens, idx, a.prompt_weight)
            if boost_ssm is not None:
                with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.bf16):
                    a1 = boost_ssm(input_ids=map_oov(x, K)).logits[:, :-1].argmax(-1)
                miss = ((a1 != full_arg) & (full_arg >= 0)).float()
                w = w * (1 + a.boost * miss)
                boosted_frac.append(((miss * gen).sum() / gen.sum().clamp(min=1)).item())
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.bf16):
                s = ssm(input_ids=map_oov(x, K)).logits[:, :-1]
            s = s.float()
            tlp = F.log_softmax(tl, -1)
            kl = (tlp.exp() * (tlp - F.log_softmax(s, -1))).sum(-1)
            loss = (kl * w).sum() / w.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ssm.parameters(), 1.0)
            opt.step(); sched.step(); step += 1
            if step % 50 == 0 or step == 1:
                msg = {"step": step, "loss": round(loss.item(), 4), "lr": sched.get_last_lr()[0],
                       "sec": round(time.time() - t0, 1)}
                if boosted_frac:
                    msg["ssm1_miss_frac"] = round(sum(boosted_frac[-50:]) / len(boosted_frac[-50:]), 4)
                print(json.dumps(msg), file=sys.stderr, flush=True)
                log.append(msg)
            if a.eval_every and step % a.eval_every == 0:
                v = evaluate(); v["step"] = step; v["sec"] = round(time.time() - t0, 1)
                print(json.dumps(v), file=sys.stderr, flush=True)
                log.append(v)
        ep += 1
        if step < T[0] and prog[0] < 1:
            v = evaluate(); v["epoch"] = ep; v["step"] = step
            print(json.dumps(v), file=sys.stderr, flush=True)
            log.append(v)
    train_sec = time.time() - t0
    os.makedirs(a.out, exist_ok=True)
    ssm.save_pretrained(a.out, safe_serialization=True)
    final = evaluate()
    info = {"args": vars(a), "params": nparams, "steps": step, "train_seconds": round(train_sec, 1),
            "train_sequences": len(tr_idx), "train_tokens_per_epoch": sum(sub_lens),
            "final": final, "log": log}
    json.dump(info, open(os.path.join(a.out, "train_log.json"), "w"), indent=1)
    print(json.dumps({"out": a.out, **final, "train_seconds": round(train_sec, 1)}))


if __name__ == "__main__":
    main()
