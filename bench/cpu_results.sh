#!/usr/bin/env bash
# The README's CPU results in one go, one benchmark after another (they would disturb each other):
# throughput per weight format, FlexServe vs HF transformers, speculative vs incremental decoding, verification cost,
# a decode step by phase, and cut down.
# Needs the release build, the default model (scripts/setup.sh), the prompt datasets
# (`flexserve datasets build`) and, for the peer comparison, torch/transformers/gguf/accelerate.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${FLEXSERVE:-.build/release/flexserve}
M=models/SmolLM2-135M-Instruct.Q4_1.gguf
date -u
$B bench throughput --model $M --formats stored,f32,f16,q8_0,q4_1,int8,int4 --activations f32,q8 --output bench/results-throughput.json
$B bench streaming --output bench/results-streaming.json
# The same decode kernels on megabyte-sized dispatches: TinyLlama-width layers with random weights.
[ -d models/wide-llama-synthetic ] || python3 bench/make_wide_model.py models/wide-llama-synthetic
$B bench throughput --model models/wide-llama-synthetic --formats q8_0,q4_1 --activations q8 --prefill-tokens 128 \
    --output bench/results-throughput-wide.json
python3 bench/hf_compare.py --threads 2 --formats f32,stored --activations f32,q8
# The other architectures against transformers: OPT-125m and Falcon/StarCoder/MPT layouts of that size, random weights.
[ -d models/synthetic/mpt-125m ] || python3 bench/make_arch_models.py models/synthetic
for m in opt falcon starcoder mpt; do
    python3 bench/hf_compare.py --model models/synthetic/$m-125m --threads 2 --formats f32,q8_0 --activations f32,q8 \
        --output bench/results-vs-hf-$m-125m.json
done
for a in f32 q8; do
    for f in stored int8 int4 q8_0; do $B perplexity --model $M --max-tokens 1023 --format $f --activations $a datasets/shakespeare.json; done
done
S="--llm-model $M --num-prompts 16 --max-new-tokens 128"
# The speculative issue's figure (tokens per LLM step): both SSMs, beam width 3, plus prompt lookup.
$B bench $S --ssm-model ssms/smollm2-draft-a --ssm-model ssms/smollm2-draft-b --max-tree-width 3 --prompt-lookup 6 \
    --output bench/results-speculative.json
$B bench $S --ssm-model ssms/smollm2-draft-a --ssm-model ssms/smollm2-draft-b --max-tree-width 3 --prompt-lookup 6 --activations q8 \
    --output bench/results-speculative-q8.json
# Cheaper drafts for this CPU, where verifying a token costs a good part of a decode step.
$B bench $S --ssm-model ssms/smollm2-draft-a --expansion-degree 1 --max-tree-depth 3 --prompt-lookup 6 \
    --output bench/results-speculative-chain.json
$B bench $S --max-tree-depth 0 --prompt-lookup 6 --output bench/results-speculative-lookup.json
$B bench $S --ssm-model ssms/smollm2-draft-a --expansion-degree 1 --max-tree-depth 3 --prompt-lookup 6 --activations q8 \
    --output bench/results-speculative-chain-q8.json
$B bench $S --max-tree-depth 0 --prompt-lookup 6 --activations q8 --output bench/results-speculative-lookup-q8.json
$B bench $S --max-tree-depth 0 --prompt-lookup 2 --activations q8 --output bench/results-speculative-lookup2-q8.json
$B bench $S --max-tree-depth 0 --prompt-lookup 2 --output bench/results-speculative-lookup2.json
$B bench $S --ssm-model ssms/smollm2-draft-a --expansion-degree 1 --max-tree-depth 2 --prompt-lookup 2 \
    --output bench/results-speculative-depth2-lookup2.json
# The demo's tree: one SSM token plus two copied from the context.
for a in f32 q8; do
    $B bench $S --ssm-model ssms/smollm2-draft-a --expansion-degree 1 --max-tree-depth 1 --prompt-lookup 2 --activations $a \
        --output bench/results-speculative-depth1-lookup2-$a.json
done
$B bench $S --ssm-model ssms/smollm2-draft-a --expansion-degree 1 --max-tree-depth 2 --prompt-lookup 2 --activations q8 \
    --output bench/results-speculative-depth2-lookup2-q8.json
# What verifying k tokens costs in decode steps.
for a in f32 q8; do $B bench verify --model $M --activations $a --output bench/results-verify-$a.json; done
# Where a decode step's time goes, phase by phase, in each placement of the threads.
for f in q8_0 q4_1; do $B bench phases --model $M --format $f --output bench/results-phases-$f.json; done
# What holds it: the step against itself without its arithmetic, glue or phase ends.
$B bench bound --model $M --rounds 30 --output bench/results-bound.json
date -u
