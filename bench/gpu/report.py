"""Combines the GPU check's JSON files into one table and one JSON. Usage: report.py RESULTS_DIR"""
import json, os, sys

folder = sys.argv[1]
def load(name):
    path = os.path.join(folder, name)
    return json.load(open(path)) if os.path.exists(path) else None

correctness, speed, hf = load("correctness.json"), load("speed.json"), load("hf.json")
speed_gemv = load("speed-gemv.json")
summary = {"correctness": correctness, "speed": speed, "speed_gemv": speed_gemv, "hf_transformers": hf}
print("\n=== FlexServe GPU check ===")
if correctness:
    print("(a) SmolLM2-135M greedy decoding, GPU vs CPU (fp32 weights)")
    print(f"{'type':5} | {'prompts identical':17} | {'min identical prefix':20} | {'max |dlogit|':12} | max |logit|")
    for r in correctness:
        print(f"{r['dataType']:5} | {r['promptsFullyIdentical']:>8}/{r['prompts']:<8} | {r['minIdenticalPrefix']:>9}/{r['newTokens']:<10} | "
              f"{r['maxAbsLogitError']:12.5f} | {r['maxAbsLogit']:.2f}")
if speed:
    print(f"(b) LLaMA-7B shape, random fp16 weights, batch 1, on {speed['device']}")
    print(f"copy bandwidth (read+write) {speed['copyBytesPerSecond'] / 1e9:.0f} GB/s, weights {speed['weightBytes'] / 1e9:.2f} GB "
          f"-> roofline {speed['rooflineStepsPerSecond']:.1f} steps/s")
    print(f"FlexServe decode {speed['decodeStepsPerSecond']:.1f} tokens/s = {100 * speed['fractionOfRoofline']:.1f}% of the roofline")
    if hf:
        ratio = speed['decodeStepsPerSecond'] / hf['tokens_per_second']
        summary["flexserve_over_hf"] = ratio
        print(f"HF transformers generate {hf['tokens_per_second']:.1f} tokens/s (torch {hf['torch']}, transformers {hf['transformers']}) "
              f"-> FlexServe/HF {ratio:.2f}x")
    base = next((v["milliseconds"] for v in speed["verify"] if v["treeTokens"] == 1), None)
    print("(c) one verify step over a token tree vs one decode step")
    print(f"{'tree tokens':11} | {'ms':7} | vs 1 token")
    for v in speed["verify"]:
        rel = v["milliseconds"] / base if base else float("nan")
        print(f"{v['treeTokens']:11} | {v['milliseconds']:7.2f} | {rel:.2f}x")
if speed_gemv:
    print(f"with FLEXSERVE_CUDA_GEMV=1: decode {speed_gemv['decodeStepsPerSecond']:.1f} tokens/s = "
          f"{100 * speed_gemv['fractionOfRoofline']:.1f}% of the roofline; verify ms "
          + ", ".join(f"{v['treeTokens']}: {v['milliseconds']:.2f}" for v in speed_gemv["verify"]))
out = os.path.join(folder, "gpu_check.json")
json.dump(summary, open(out, "w"), indent=2)
print(f"wrote {out}")
