#!/usr/bin/env bash
# The README's CPU results in one go, one benchmark after another (they would disturb each other):
# throughput per weight format, FlexServe vs HF transformers, speculative vs incremental decoding.
# Needs the release build, the default model (scripts/setup.sh), the prompt datasets
# (`flexserve datasets build`) and, for the peer comparison, torch/transformers/gguf/accelerate.
set -euo pipefail
cd "$(dirname "$0")/.."
B=.build/release/flexserve
M=models/SmolLM2-135M-Instruct.Q4_1.gguf
date -u
$B bench throughput --model $M --formats stored,f32,f16,q8_0,q4_1,int8,int4 --output bench/results-throughput.json
python3 bench/hf_compare.py --threads 2 --formats f32,stored
$B bench --llm-model $M --ssm-model ssms/smollm2-draft-a --ssm-model ssms/smollm2-draft-b \
    --num-prompts 8 --max-new-tokens 128 --output bench/results-speculative.json
$B bench --llm-model $M --ssm-model ssms/smollm2-draft-a --num-prompts 8 --max-new-tokens 128 \
    --expansion-degree 1 --max-tree-depth 4 --output bench/results-speculative-chain.json
date -u
