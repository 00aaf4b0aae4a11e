#!/usr/bin/env python3
"""FlexServe vs HuggingFace transformers on the same CPU, in the same run (the CPU-speed issue's
peer comparison): SmolLM2 in fp32, batch 1, the same thread count for both.

HF: prefill of a 512-token prompt (the best of three forwards) and greedy decoding with its KV cache
(64 steps after a 32-token prompt, the best of eight segments of eight steps, as FlexServe's figure;
the mean is kept too). FlexServe: `flexserve bench throughput` on the same
model file (decoding after a 16-token prompt), which also measures the machine. Prints a table and writes JSON.

    python3 bench/hf_compare.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--threads 2]
"""
import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def hf_speed(model_path: Path, threads: int, prefill_tokens: int, decode_tokens: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    if model_path.suffix == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(model_path.parent, gguf_file=model_path.name, dtype=torch.float32)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model.eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, model.config.vocab_size - 100, (1, prefill_tokens), generator=g)
    with torch.inference_mode():
        model(ids[:, :16])  # warm-up
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            model(ids)
            best = min(best, time.perf_counter() - t0)
        prefill = prefill_tokens / best

        # Greedy decoding with the KV cache, as `generate` does, timing the steps after the first.
        out = model(ids[:, :32], use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        steps = []
        for _ in range(decode_tokens + 1):
            t0 = time.perf_counter()
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            steps.append(time.perf_counter() - t0)
        # The best of eight equal segments, as `flexserve bench throughput` takes its decode rate (the mean too).
        steps = steps[1:]
        segment = max(1, len(steps) // 8)
        decode = max(segment / sum(steps[i:i + segment]) for i in range(0, len(steps) - segment + 1, segment))
        mean = len(steps) / sum(steps)
    import transformers
    return {"prefillTokensPerSecond": prefill, "decodeTokensPerSecond": decode, "decodeMeanTokensPerSecond": mean,
            "torch": torch.__version__, "transformers": transformers.__version__, "threads": threads}


def flexserve_speed(binary: str, model_path: Path, formats: str, activations: str, prefill_tokens: int, decode_tokens: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "throughput.json"
        subprocess.run([binary, "bench", "throughput", "--model", str(model_path), "--formats", formats, "--activations", activations,
                        "--prefill-tokens", str(prefill_tokens), "--decode-tokens", str(decode_tokens),
                        "--output", str(output)], check=True, stdout=subprocess.DEVNULL)
        return json.loads(output.read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--binary", default=str(ROOT / ".build" / "release" / "flexserve"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--formats", default="f32,stored,q8_0")
    p.add_argument("--prefill-tokens", type=int, default=512)
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--activations", default="f32,q8", help="FlexServe activation formats (q8: int8 dot products)")
    p.add_argument("--output", default=str(ROOT / "bench" / "results-vs-hf.json"))
    args = p.parse_args()
    model = Path(args.model)

    # FlexServe first: once torch has run, its idle worker threads keep spinning for a while and would
    # take cores from the FlexServe run.
    fs = flexserve_speed(args.binary, model, args.formats, args.activations, args.prefill_tokens, args.decode_tokens)
    hf = hf_speed(model, args.threads, args.prefill_tokens, args.decode_tokens)

    rows = []
    for r in fs["rows"]:
        rows.append({"format": r["format"], "activations": r["activations"],
                     "prefillTokensPerSecond": r["prefillTokensPerSecond"],
                     "decodeTokensPerSecond": r["decodeTokensPerSecond"],
                     "prefillVsHF": r["prefillTokensPerSecond"] / hf["prefillTokensPerSecond"],
                     "decodeVsHF": r["decodeTokensPerSecond"] / hf["decodeTokensPerSecond"]})
    print(f"machine: {fs['machine'].get('cpu', platform.processor())}, {args.threads} threads; "
          f"HF transformers {hf['transformers']} (torch {hf['torch']}) fp32")
    print(f"{'engine':<28} {'prefill tok/s':>14} {'decode tok/s':>13} {'prefill ×HF':>12} {'decode ×HF':>11}")
    print(f"{'HF transformers (fp32)':<28} {hf['prefillTokensPerSecond']:>14.1f} {hf['decodeTokensPerSecond']:>13.1f} {1:>12.2f} {1:>11.2f}")
    for r in rows:
        name = f"FlexServe ({r['format']}, {r['activations']})"
        print(f"{name:<28} {r['prefillTokensPerSecond']:>14.1f} {r['decodeTokensPerSecond']:>13.1f} "
              f"{r['prefillVsHF']:>12.2f} {r['decodeVsHF']:>11.2f}")
    Path(args.output).write_text(json.dumps({"model": str(args.model), "machine": fs["machine"], "hf": hf,
                                             "flexserve": rows}, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
