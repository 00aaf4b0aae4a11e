# Sourced by the phased GPU check scripts (default_check.sh, default_w4_check.sh); needs KEEP, OUT and PHASE.
# Where the phases put the executable, the models and the prompts on the GPU machine.
LLAMA7B=/tmp/flexserve-llama7b-random
SMOL=/tmp/SmolLM2-135M-Instruct.Q4_1.gguf
FLEXSERVE=/tmp/flexserve
P=bench/gpu/prompts.json
mkdir -p "$OUT" "$KEEP" /tmp/smol-parts
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
step() {  # NAME [VAR=value ...] COMMAND...: with a time limit, a clean FLEXSERVE_CUDA_* environment; log $KEEP/NAME.log
    local name=$1; shift
    echo; echo "== $name: $*"
    local start=$SECONDS
    timeout -k 10 "${STEP_TIMEOUT:-180}" env $(env | grep -o '^FLEXSERVE_CUDA_[A-Z0-9_]*' | sed 's/^/-u /') "$@" 2>&1 | tee "$KEEP/$name.log"
    local rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" | tee -a "$KEEP/status.tsv"
    [ "$rc" = 0 ] || echo "!! $name failed (exit $rc)"
}
back() { tar czf "$OUT/$PHASE.tgz" -C "$KEEP" .; }
