#!/bin/bash
# CPU smoke test of round3.sh + wait_r3.sh with the tiny random stand-in LLM (smoke_llm.py), run from the
# repository root after prepare_data.py and make_items3.py. Minutes on 2 cores; checks code paths only.
set -e
T=${T:-/tmp/r3smoke}; rm -rf $T; mkdir -p $T/stage $T/OUT
W=tools/distill/work
cp $W/items3.json.gz $W/real.npz $T/stage/
# short evaluation prompts: the SSMs' forwards recompute the whole prefix, slow on 2 CPU cores
python3 -c "import json,sys; e=json.load(open(sys.argv[1])); json.dump([{'ids': x['ids'][-24:]} for x in e[:2]], open(sys.argv[2],'w'))" $W/eval_items.json $T/stage/eval_items.json
python3 tools/distill/smoke_llm.py $T/llm
SMOKE=1 S=$T/stage DISTILL_LLM_CACHE=$T/llm LAYERS=0,1 BATCH_TOKENS=2048 bash tools/distill/round3.sh
S=$T/stage OUT=$T/OUT bash tools/distill/wait_r3.sh 5
python3 - "$T" <<'PY'
import json, sys, glob
T = sys.argv[1]
e = json.load(open(f"{T}/OUT/eval.json"))
print({k: round(v["tokens_per_step"], 3) for k, v in e["results"].items()})
assert len(e["results"]) == 13, sorted(e["results"])
assert len(glob.glob(f"{T}/OUT/ssm_*.gguf.part*")) >= 2
PY
echo R3 SMOKE OK
