#!/usr/bin/env bash
# The main job: speculative generation with SmolLM2-135M-Instruct and our distilled SSM on a few prompts.
# On a CPU verifying a token costs a good part of a decode step and a draft forward of the SSM a quarter of one,
# so one SSM token plus two copied from the context is the fastest tree with an SSM here (Zen 5: 1.03-1.25x
# incremental decoding, against 0.69-0.84x for a depth-3 chain plus lookup 6; bench/results-speculative-*-zen5.json);
# the most tokens per LLM step come from both SSMs with --max-tree-width 3 (bench/results-speculative.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ ! -d ssms/smollm2-draft-a ]]; then
    echo "no SSMs in ssms/: running incremental decoding" >&2
    exec .build/release/flexserve incr-decoding --llm-model models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --prompt bench/prompts/demo.json --max-new-tokens 128 --output-file demo-output.txt
fi
exec .build/release/flexserve spec-infer --llm-model models/SmolLM2-135M-Instruct.Q4_1.gguf \
    --ssm-model ssms/smollm2-draft-a --prompt bench/prompts/demo.json --max-new-tokens 128 \
    --output-file demo-output.txt --expansion-degree 1 --max-tree-depth 1 --prompt-lookup 2
