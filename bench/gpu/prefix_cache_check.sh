#!/usr/bin/env bash
# Prefix caching on a device: the same output files with and without it, incremental and speculative (the LLM as its
# own SSM), on the tiny LLaMA fixture over prompts that share a long start. Usage: bench/gpu/prefix_cache_check.sh
# [BINARY] [DEVICE] (defaults: .build/release/flexserve, cuda). Writes to ${OUT:-/tmp}/prefix-cache-*.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-.build/release/flexserve}
DEVICE=${2:-cuda}
DIR=${OUT:-/tmp}
python3 -c "
import json, sys
base = 'the quick brown fox jumps over the lazy dog and then it runs far away into the forest where nobody can find it. ' * 3
json.dump([base + 'Q%d: what next?' % i for i in range(6)], open(sys.argv[1], 'w'))" "$DIR/prefix-cache-prompts.json"
M=Tests/Fixtures/tiny-llama
strip_times() { sed -E 's/latency\([0-9]+\) ttft\([0-9]+\)//' "$1" | md5sum | cut -d' ' -f1; }
status=0
for mode in incr-decoding spec-infer; do
    extra=(); [[ $mode == spec-infer ]] && extra=(--ssm-model $M --max-tree-depth 3 --expansion-degree 1)
    for p in enable disable; do
        $B $mode --device "$DEVICE" --llm-model $M "${extra[@]}" --prompt "$DIR/prefix-cache-prompts.json" --max-new-tokens 24 \
            --max-requests-per-batch 1 --$p-prefix-caching --verbose --output-file "$DIR/prefix-cache-$mode-$p.txt" \
            | grep -a -E "^prompt|requests" | sed -E 's/, finished.*//'
    done
    a=$(strip_times "$DIR/prefix-cache-$mode-enable.txt"); b=$(strip_times "$DIR/prefix-cache-$mode-disable.txt")
    if [[ $a == "$b" ]]; then echo "$mode on $DEVICE: the same output with and without prefix caching"; else echo "$mode on $DEVICE: OUTPUTS DIFFER"; status=1; fi
done
exit $status
