#!/usr/bin/env python3
"""Fast LLM continuations for distillation data (round 3): the same job as generate.py, but with a
hand-written decode loop over a preallocated KV cache instead of transformers' generate (whose
per-step cache concatenation and Python overhead made round 1/2 generation slow), big batches and
bf16 on the GPU. Greedy items take the argmax, sampled items draw at --temperature (no top-k/top-p).
Same .npz output as generate.py (common.save_gen). --check N compares the first N greedy prompts'
continuations with transformers' generate (same dtype) and prints the agreement.
"""
import argparse, gzip, json, random, sys, time

import torch
import torch.nn.functional as F

from common import EOS_ID, load_llm, save_gen


class FastLLM:
    def __init__(self, llm, dtype):
        c = llm.config
        self.nh, self.nkv = c.num_attention_heads, c.num_key_value_heads
        self.hd = getattr(c, "head_dim", None) or c.hidden_size // self.nh
        self.eps = c.rms_norm_eps
        self.dtype = dtype
        self.dev = next(llm.parameters()).device
        m = llm.model
        self.embed = m.embed_tokens.weight.to(dtype)
        self.head = llm.lm_head.weight.to(dtype)
        self.norm = m.norm.weight.to(dtype)
        self.layers = []
        for L in m.layers:
            a, f = L.self_attn, L.mlp
            self.layers.append(dict(
                ln1=L.input_layernorm.weight.to(dtype), ln2=L.post_attention_layernorm.weight.to(dtype),
                qkv=torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).to(dtype),
                o=a.o_proj.weight.to(dtype), gu=torch.cat([f.gate_proj.weight, f.up_proj.weight]).to(dtype),
                down=f.down_proj.weight.to(dtype), inter=f.gate_proj.weight.shape[0]))
        self.rotary = m.rotary_emb
        self.cos = self.sin = None

    def rope_table(self, n):
        if self.cos is None or self.cos.shape[0] < n:
            pos = torch.arange(n, device=self.dev)[None]
            dummy = torch.zeros(1, device=self.dev, dtype=torch.float32)
            cos, sin = self.rotary(dummy, pos)
            self.cos, self.sin = cos[0].float(), sin[0].float()

    def rms(self, x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(self.dtype) * w

    @staticmethod
    def rot(x, cos, sin):  # x (..., hd); HF rotate_half convention
        x1, x2 = x.chunk(2, -1)
        return (x.float() * cos + torch.cat([-x2, x1], -1).float() * sin).to(x.dtype)

    @torch.no_grad()
    def generate(self, prompts, max_new, sample, temperature=0.8, prefill_rows=256):
        """prompts: token lists; sample: bool per row. Returns generated token lists (EOS kept, cut after it)."""
        B, dev, dt = len(prompts), self.dev, self.dtype
        P = max(len(p) for p in prompts)
        S = P + max_new
        self.rope_table(S)
        ids = torch.full((B, P), EOS_ID, dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, P - len(p):] = torch.tensor(p)
        ids = ids.to(dev)
        pad = torch.tensor([P - len(p) for p in prompts], device=dev)
        nL = len(self.layers)
        kc = torch.zeros(nL, B, self.nkv, S, self.hd, dtype=dt, device=dev)
        vc = torch.zeros_like(kc)
        rep = self.nh // self.nkv
        ar = torch.arange(P, device=dev)
        last_h = torch.empty(B, self.embed.shape[1], dtype=dt, device=dev)
        for b0 in range(0, B, prefill_rows):  # prefill in row chunks (activation memory)
            sl = slice(b0, min(B, b0 + prefill_rows))
            pd = pad[sl]
            n = pd.shape[0]
            pos = (ar[None] - pd[:, None]).clamp(min=0)
            cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]
            keyok = ar[None, :] >= pd[:, None]                                     # (n, P)
            mask = (ar[None, :, None] >= ar[None, None, :]) & keyok[:, None, :]     # (n, Pq, Pk)
            mask = (mask | torch.eye(P, dtype=torch.bool, device=dev)[None])[:, None]
            x = self.embed[ids[sl]]
            for li, L in enumerate(self.layers):
                h = self.rms(x, L["ln1"])
                qkv = h @ L["qkv"].t()
                q, k, v = qkv.split([self.nh * self.hd, self.nkv * self.hd, self.nkv * self.hd], -1)
                q = self.rot(q.view(n, P, self.nh, self.hd).transpose(1, 2), cos, sin)
                k = self.rot(k.view(n, P, self.nkv, self.hd).transpose(1, 2), cos, sin)
                v = v.view(n, P, self.nkv, self.hd).transpose(1, 2)
                kc[li, sl, :, :P] = k
                vc[li, sl, :, :P] = v
                o = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                                   attn_mask=mask)
                x = x + o.transpose(1, 2).reshape(n, P, -1) @ L["o"].t()
                h = self.rms(x, L["ln2"])
                g, u = (h @ L["gu"].t()).split(L["inter"], -1)
                x = x + (F.silu(g) * u) @ L["down"].t()
            last_h[sl] = x[:, -1]
        samp = torch.tensor(sample, device=dev)
        slots = torch.arange(S, device=dev)
        out = torch.empty(B, max_new, dtype=torch.long, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        lens = P - pad
        h = last_h
        for t in range(max_new):
            logits = (self.rms(h, self.norm) @ self.head.t()).float()
            nxt = logits.argmax(-1)
            if bool(sample and any(sample)):
                drawn = torch.multinomial(torch.softmax(logits / temperature, -1), 1)[:, 0]
                nxt = torch.where(samp, drawn, nxt)
            nxt = torch.where(done, torch.full_like(nxt, EOS_ID), nxt)
            out[:, t] = nxt
            done = done | (nxt == EOS_ID)
            if t == max_new - 1 or (t % 8 == 7 and bool(done.all())):
                out = out[:, :t + 1]
                break
            s = P + t                       # cache slot of this token
            pos = lens + t                  # its position
            cos, sin = self.cos[pos][:, None, :], self.sin[pos][:, None, :]   # (B,1,hd)
            x = self.embed[nxt]             # (B,H)
            keyok = ((slots[None, :s + 1] >= pad[:, None]))[:, None, None, :]  # (B,1,1,s+1)
            for li, L in enumerate(self.layers):
                hh = self.rms(x, L["ln1"])
                qkv = hh @ L["qkv"].t()
                q, k, v = qkv.split([self.nh * self.hd, self.nkv * self.hd, self.nkv * self.hd], -1)
                q = self.rot(q.view(B, self.nh, self.hd), cos, sin)
                k = self.rot(k.view(B, self.nkv, self.hd), cos, sin)
                kc[li, :, :, s] = k
                vc[li, :, :, s] = v.view(B, self.nkv, self.hd)
                K, V = kc[li, :, :, :s + 1], vc[li, :, :, :s + 1]                # (B,nkv,s+1,hd)
                qg = q.view(B, self.nkv, rep, self.hd)
                sc = (qg @ K.transpose(-1, -2)).float() * (self.hd ** -0.5)      # (B,nkv,rep,s+1)
                sc = sc.masked_fill(~keyok, float("-inf"))
                o = (torch.softmax(sc, -1).to(dt) @ V).reshape(B, -1)
                x = x + o @ L["o"].t()
                hh = self.rms(x, L["ln2"])
                g, u = (hh @ L["gu"].t()).split(L["inter"], -1)
                x = x + (F.silu(g) * u) @ L["down"].t()
            h = x
        res = []
        for g in out.cpu().tolist():
            res.append(g[:g.index(EOS_ID) + 1] if EOS_ID in g else g)
        return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", required=True)
    ap.add_argument("--gguf-dir", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-new", type=int, default=192)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--time-budget", type=float, default=0, help="stop starting batches after this many seconds")
    ap.add_argument("--check", type=int, default=0, help="compare N greedy prompts with transformers' generate")
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(a.seed)
    items = json.load(gzip.open(a.items) if a.items.endswith(".gz") else open(a.items))
    if a.limit:
        items = items[:a.limit]
    llm = load_llm(a.gguf_dir, dev)
    dt = getattr(torch, a.dtype)
    fast = FastLLM(llm, dt)
    if a.check:
        idx = [i for i, it in enumerate(items) if not it["sample"]][:a.check]
        ps = [items[i]["ids"] for i in idx]
        mine = fast.generate(ps, 32, [False] * len(ps))
        ref_m = llm.to(dt)
        L = max(len(p) for p in ps)
        inp = torch.full((len(ps), L), EOS_ID, dtype=torch.long); att = torch.zeros_like(inp)
        for r, p in enumerate(ps):
            inp[r, L - len(p):] = torch.tensor(p); att[r, L - len(p):] = 1
        with torch.no_grad():
            ref = ref_m.generate(input_ids=inp.to(dev), attention_mask=att.to(dev), max_new_tokens=32, do_sample=False,
                                 eos_token_id=EOS_ID, pad_token_id=EOS_ID)[:, L:].cpu().tolist()
        ref = [g[:g.index(EOS_ID) + 1] if EOS_ID in g else g for g in ref]
        same = sum(x == y for x, y in zip(mine, ref))
        first = [next((j for j, (u, w) in enumerate(zip(x, y)) if u != w), min(len(x), len(y))) for x, y in zip(mine, ref)]
        print(json.dumps({"check_identical": f"{same}/{len(ps)}", "first_divergence": first}), file=sys.stderr, flush=True)
        # transformers refuses .float() on a GGUF-loaded model ("quantized"); cast the tensors directly.
        for t in list(llm.parameters()) + list(llm.buffers()):
            if t.is_floating_point():
                t.data = t.data.float()
        fast = FastLLM(llm, dt)
    t0 = time.time()
    plan = []
    for sample in (False, True):  # greedy first, each group length-sorted, batches shuffled
        idx = [i for i, it in enumerate(items) if it["sample"] == sample]
        idx.sort(key=lambda i: len(items[i]["ids"]))
        chunks = [idx[b:b + a.batch] for b in range(0, len(idx), a.batch)]
        random.Random(a.seed).shuffle(chunks)
        plan += [(sample, c) for c in chunks]
    seqs, plens, flags, done = {}, {}, {}, []
    ntok = 0
    for bn, (sample, chunk) in enumerate(plan):
        if a.time_budget and time.time() - t0 > a.time_budget:
            print(f"time budget reached after {bn} of {len(plan)} batches", file=sys.stderr)
            break
        gen = fast.generate([items[i]["ids"] for i in chunk], a.max_new, [sample] * len(chunk), a.temperature)
        for i, g in zip(chunk, gen):
            seqs[i] = list(items[i]["ids"]) + g
            plens[i] = len(items[i]["ids"])
            flags[i] = int(sample) | (int(items[i]["chat"]) << 1)
            ntok += len(g)
            done.append(i)
        print(f"sample={sample} batch {bn}/{len(plan)}: {len(chunk)} rows, P={max(len(items[i]['ids']) for i in chunk)} "
              f"{time.time() - t0:.1f}s, {ntok} generated tokens", file=sys.stderr, flush=True)
    done.sort()
    save_gen(a.out, [seqs[i] for i in done], [plens[i] for i in done], [flags[i] for i in done])
    print(json.dumps({"sequences": len(done), "sampled": sum(flags[i] & 1 for i in done), "generated_tokens": ntok,
                      "prompt_tokens": sum(plens[i] for i in done), "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
