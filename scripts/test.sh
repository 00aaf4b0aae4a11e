#!/usr/bin/env bash
# The test suite: Swift unit and model tests (release build: model code is 10-100x slower in debug),
# then the HTTP API tests through the official openai client.
set -euo pipefail
cd "$(dirname "$0")/.."
FLEXSERVE_SKIP_BUILD=1 bash scripts/setup.sh
swift test -c release
# `swift test` has just built the executable too; build it only if it is missing (a second release
# build without testability would recompile everything).
[[ -x .build/release/flexserve ]] || swift build -c release --product flexserve
bash Tests/server/run.sh "$PWD/.build/release/flexserve"
