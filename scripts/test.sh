#!/usr/bin/env bash
# The test suite: Swift unit and model tests (release build: model code is 10-100x slower in debug),
# then the HTTP API tests through the official openai client.
set -euo pipefail
cd "$(dirname "$0")/.."
# Release builds target AVX-512 + VNNI (Package.swift); a CPU without it gets the AVX2 kernels (haswell).
grep -q avx512_vnni /proc/cpuinfo 2>/dev/null || export FLEXSERVE_TARGET_CPU=${FLEXSERVE_TARGET_CPU:-haswell}
FLEXSERVE_SKIP_BUILD=1 bash scripts/setup.sh
swift test -c release
# `swift test` has just built the executable too; build it only if it is missing (a second release
# build without testability would recompile everything).
[[ -x .build/release/flexserve ]] || swift build -c release --product flexserve
bash Tests/server/run.sh "$PWD/.build/release/flexserve"
