#!/usr/bin/env bash
# The main job: speculative generation with SmolLM2-135M-Instruct and our distilled SSMs on a few prompts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ssms=()
for s in ssms/smollm2-draft-a ssms/smollm2-draft-b; do [[ -d $s ]] && ssms+=(--ssm-model "$s"); done
if [[ ${#ssms[@]} -eq 0 ]]; then
    echo "no SSMs in ssms/: running incremental decoding" >&2
    exec .build/release/flexserve incr-decoding --llm-model models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --prompt bench/prompts/demo.json --max-new-tokens 128 --output-file demo-output.txt
fi
exec .build/release/flexserve spec-infer --llm-model models/SmolLM2-135M-Instruct.Q4_1.gguf "${ssms[@]}" \
    --prompt bench/prompts/demo.json --max-new-tokens 128 --output-file demo-output.txt
