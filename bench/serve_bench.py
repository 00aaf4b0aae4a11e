#!/usr/bin/env python3
"""Benchmark `flexserve serve` over HTTP: throughput and time to first token at several
concurrency levels, with and without speculative decoding.

    python3 bench/serve_bench.py --bin .build/release/flexserve \
        --model models/SmolLM2-135M-Instruct.Q4_1.gguf --ssm-model ssms/smollm2-draft-a

Each configuration starts its own server (port 0), sends one warm-up request, then for every
concurrency level C keeps C streaming clients busy until `--requests` requests finished (greedy,
`ignore_eos` so every request generates `--max-tokens` tokens). Writes JSON and prints a table.
"""
import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "server"))
from conftest import Server  # noqa: E402

PROMPTS = [
    "Give me three travel tips for Tokyo.",
    "Write a Python function that checks whether a number is prime.",
    "Explain in two sentences why the sky is blue.",
    "Describe how a bicycle works.",
    "What are the benefits of regular exercise?",
    "Summarize the plot of Romeo and Juliet.",
    "How do vaccines train the immune system?",
    "List five uses for a paper clip.",
]


async def one_request(client, model, messages, max_tokens):
    start = time.perf_counter()
    first = None
    tokens = 0
    stream = await client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, temperature=0,
                                                  stream=True, stream_options={"include_usage": True},
                                                  extra_body={"ignore_eos": True})
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - start
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return first if first is not None else time.perf_counter() - start, time.perf_counter() - start, tokens


async def level(server, concurrency, requests, max_tokens):
    client = server.async_client()
    queue = list(range(requests))
    results = []

    async def worker():
        while queue:
            i = queue.pop()
            msgs = [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
            results.append(await one_request(client, server.name, msgs, max_tokens))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    ttft = sorted(r[0] for r in results)
    tokens = sum(r[2] for r in results)
    per_token = [(r[1] - r[0]) / max(1, r[2] - 1) for r in results]
    return {
        "concurrency": concurrency, "requests": len(results), "wall_s": wall, "completion_tokens": tokens,
        "throughput_tok_s": tokens / wall, "requests_per_s": len(results) / wall,
        "ttft_mean_s": statistics.mean(ttft), "ttft_p50_s": ttft[len(ttft) // 2], "ttft_max_s": ttft[-1],
        "time_per_output_token_mean_s": statistics.mean(per_token),
    }


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "load_average_at_start": os.getloadavg()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / ".build" / "release" / "flexserve"))
    ap.add_argument("--model", default=str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--ssm-model", action="append", default=[], help="SSM for the speculative configuration (repeatable)")
    ap.add_argument("--speculative-args", default="",
                    help="more serve flags for the speculative configuration, e.g. '--expansion-degree 1 --max-tree-depth 4'")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--requests", type=int, default=0, help="requests per level (default: max(4, 2 x concurrency))")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "bench" / "serve_bench.json"))
    args = ap.parse_args()
    os.environ["FLEXSERVE_BIN"] = args.bin
    levels = [int(c) for c in args.concurrency.split(",")]
    configs = [("incremental", [])]
    if args.ssm_model:
        configs.append(("speculative", [a for s in args.ssm_model for a in ("--ssm-model", s)] + args.speculative_args.split()))
    report = {"machine": machine(), "model": args.model, "ssm_models": args.ssm_model,
              "speculative_args": args.speculative_args, "max_tokens": args.max_tokens, "runs": []}
    for name, extra in configs:
        server = Server(args.model, "--max-requests-per-batch", max(levels), *extra)
        try:
            asyncio.run(level(server, 1, 1, 8))  # warm-up
            for c in levels:
                n = args.requests or max(4, 2 * c)
                before = server.metrics()
                r = asyncio.run(level(server, c, n, args.max_tokens))
                after = server.metrics()
                steps = after["flexserve_llm_steps_total"] - before["flexserve_llm_steps_total"]
                gen = after["flexserve_generated_tokens_total"] - before["flexserve_generated_tokens_total"]
                drafted = after["flexserve_speculation_drafted_tokens_total"] - before["flexserve_speculation_drafted_tokens_total"]
                accepted = after["flexserve_speculation_accepted_tokens_total"] - before["flexserve_speculation_accepted_tokens_total"]
                verify = after["flexserve_speculation_verify_steps_total"] - before["flexserve_speculation_verify_steps_total"]
                r.update(config=name, llm_steps=steps, tokens_per_llm_step=gen / steps if steps else 0,
                         acceptance_rate=accepted / drafted if drafted else None,
                         tokens_per_request_step=(accepted + verify) / verify if verify else None)
                report["runs"].append(r)
                print(f"{name:12s} c={c:<3d} {r['throughput_tok_s']:7.1f} tok/s  TTFT mean {r['ttft_mean_s'] * 1000:7.0f} ms  "
                      f"p50 {r['ttft_p50_s'] * 1000:7.0f} ms", file=sys.stderr, flush=True)
        finally:
            server.stop()
    report["machine"]["load_average_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'config':12s} {'conc':>4s} {'reqs':>4s} {'tok/s':>8s} {'req/s':>6s} {'TTFT mean':>10s} {'TTFT p50':>9s} "
          f"{'ms/token':>8s} {'tok/step':>8s} {'accept':>6s}")
    for r in report["runs"]:
        acc = "-" if r["acceptance_rate"] is None else f"{r['acceptance_rate']:.2f}"
        print(f"{r['config']:12s} {r['concurrency']:4d} {r['requests']:4d} {r['throughput_tok_s']:8.1f} {r['requests_per_s']:6.2f} "
              f"{r['ttft_mean_s'] * 1000:8.0f}ms {r['ttft_p50_s'] * 1000:7.0f}ms {r['time_per_output_token_mean_s'] * 1000:8.1f} "
              f"{r['tokens_per_llm_step']:8.2f} {acc:>6s}")
    print(f"\nwrote {args.out}; machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
          f"load average {report['machine']['load_average_at_start'][0]:.1f} at start")


if __name__ == "__main__":
    main()
