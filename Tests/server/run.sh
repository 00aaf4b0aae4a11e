#!/usr/bin/env bash
# HTTP API tests: start the real release binary on loopback ports and drive it with the official
# openai client. Usage: Tests/server/run.sh [path/to/flexserve] [pytest args...] (or FLEXSERVE_BIN=...).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-${FLEXSERVE_BIN:-}}"
if [[ -z "$bin" || ! -x "$bin" ]]; then
    echo "Tests/server/run.sh: pass the flexserve binary as \$1 or FLEXSERVE_BIN (got '${bin}')" >&2
    exit 2
fi
export FLEXSERVE_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
if ! python3 -c "import openai, pytest" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore openai pytest \
        || { echo "Tests/server/run.sh: pip install openai pytest failed" >&2; exit 1; }
fi
# SmolLM2 (chat and lifecycle tests) comes from scripts/setup.sh; without it those tests are skipped.
shift $(( $# > 0 ? 1 : 0 ))
exec python3 -m pytest -q -p no:cacheprovider -p no:benchmark Tests/server "$@"
