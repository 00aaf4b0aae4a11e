#!/bin/bash
# Round 3 on the GPU machine, launched detached from the repository root:
#   setsid nohup bash tools/distill/round3.sh > /root/stage/r3.log 2>&1 < /dev/null &
# then `bash tools/distill/wait_r3.sh SECONDS` (repeat) until it prints R3 DONE.
# Stage (/root/stage, copied there by the staging calls): part_a part_b part_c (the GGUF), whl/*.whl,
# items3.json.gz, real.npz, eval_items.json (tools/distill/make_items3.py, prepare_data.py).
# Pipeline: fast LLM generation (gen_fast.py) -> SSM-A (4 LLM layers, full MLP, K 12288) on generated +
# real ShareGPT text -> SSM-B boost-tuned from A -> Q8_0 GGUF export -> acceptance of chains / trees.
# Outputs: $R/out (split GGUFs, logs.tgz, eval.json); progress: $R/progress.log; $R/DONE at the end.
# SMOKE=1 (tools/distill/smoke_r3.sh): CPU, tiny random stand-in LLM in DISTILL_LLM_CACHE, tiny budgets.
S=${S:-/root/stage}; R=${R:-$S/r3}; C=$R/code; L=$R/logs
mkdir -p $R/out $L $C; cp tools/distill/*.py $C/
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false DISTILL_LLM_CACHE=${DISTILL_LLM_CACHE:-$S/llm}
LAYERS=${LAYERS:-0,1,2,3}; K=${K:-12288}; INTER=${INTER:-1536}; BT=${BATCH_TOKENS:-65536}
if [ "${SMOKE:-0}" = 1 ]; then
  GEN="--limit 48 --max-new 12 --batch 16 --dtype float32 --check 2"; EVN="--n 2 --new-tokens 6"; EVE=""
  TA=${TA:-25}; TB=${TB:-10}; BT=4096; VAL="--val-frac 0.1 --eval-every 5"
else
  GEN="--max-new 192 --batch ${GEN_BATCH:-2048} --time-budget ${GEN_BUDGET:-100} --check 16"
  EVN="--n 50 --new-tokens 128"; VAL="--eval-every 300"; TA=${TA:-270}; TB=${TB:-100}
fi
G="--gguf-dir $S/gguf"
cd $C
{
date
if [ "${SMOKE:-0}" != 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $S/whl/*.whl
  export PYTHONPATH=/tmp/site
  mkdir -p $S/gguf; F=$S/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
  [ -f $F ] || cat $S/part_a $S/part_b $S/part_c > $F
  echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $F" | sha256sum -c || { touch $R/DONE; exit 1; }
  nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
fi
# 1. data: the LLM's continuations (greedy first), fallback transformers' generate
if [ ! -f $R/gen3.npz ]; then
  python3 gen_fast.py $G --items $S/items3.json.gz --out $R/gen3.npz $GEN 2>$L/gen.err | tee $L/gen.json
  if [ ! -f $R/gen3.npz ]; then
    echo "gen_fast failed: transformers generate instead"; tail -5 $L/gen.err
    python3 generate.py $G --items $S/items3.json.gz --out $R/gen3.npz --max-new 192 --batch 1024 --greedy-first \
      --time-budget ${GEN_BUDGET:-100} $([ "${SMOKE:-0}" = 1 ] && echo "--limit 16 --batch 8") 2>$L/gen_hf.err | tee $L/gen_hf.json
  fi
fi
grep -a -E "check|budget|batch 0/" $L/gen.err | tail -3; date
DATA=$R/gen3.npz; [ "${REAL:-1}" = 1 ] && DATA=$DATA,$S/real.npz
ARCH="--K $K --layers $LAYERS --intermediate $INTER"
# 2. SSM-A: distilled (KL to the LLM over the K known ids), hard wall-clock bound with a decaying schedule
[ -f $R/a/model.safetensors ] || python3 train.py $G --gen $DATA --out $R/a $ARCH --epochs 1000 --max-steps 1000000 \
  --lr ${LR_A:-1e-3} --warmup 100 --bf16 --batch-tokens $BT --time-limit $TA $VAL 2>$L/train_a.err | tee $L/train_a.json
date
# 3. SSM-B: boost-tuned from A on A's misses (beta 3)
[ -f $R/b/model.safetensors ] || python3 train.py $G --gen $DATA --out $R/b $ARCH --epochs 1000 --max-steps 1000000 \
  --lr ${LR_B:-3e-4} --warmup 20 --bf16 --batch-tokens $BT --time-limit $TB $VAL --init-from $R/a --boost-from $R/a \
  --boost ${BOOST:-3} --seed 1 2>$L/train_b.err | tee $L/train_b.json
date
# 4. export: Q8_0 GGUF folders (engine) + dequantised HF folders (evaluation measures the quantised models)
for m in a b; do
  python3 export.py $R/$m $R/x$m --name smollm2-draft-$m --gguf Q8_0 --eval-dir $R/e$m
  cp $R/$m/train_log.json $L/train_log_$m.json; cp $R/x$m/config.json $L/config_$m.json; cp $R/x$m/metrics.json $L/metrics_$m.json
  split -b 15M -d $R/x$m/model.gguf $R/out/ssm_$m.gguf.part; sha256sum $R/x$m/model.gguf > $R/out/ssm_$m.gguf.sha256
done
tar czf $R/out/logs_pre_eval.tgz -C $R logs
date
# 5. acceptance (greedy; engine's drafting: expansion per depth, frontier cap, prompt lookup); results after each config.
#    wN = the CLI's --max-tree-width N (expansion N at every depth, frontier cap N); wNcM (cap M != N) needs TreeShape
#    from code; +pl6 = --prompt-lookup 6.
D8=1,1,1,1,1,1,1,1; E2=2,2,2,2,2,2,2,2; E3=3,3,3,3,3,3,3,3; E4=4,4,4,4,4,4,4,4
python3 evaluate.py $G --items $S/eval_items.json $EVN --ssm a=$R/ea --ssm b=$R/eb --refs-cache $S/refs.json \
  --config chain-a:a:$D8 --config flexflow-a+b:a+b:1,1,3,1,1,1,1,1 --config w2-a+b:a+b:$E2:2 \
  --config w3-a+b:a+b:$E3:3 --config w4-a+b:a+b:$E4:4 --config w3-a+b+pl6:a+b:$E3:3:6 \
  --config w2c4-a+b:a+b:$E2:4 --config w3c6-a+b:a+b:$E3:6 --config w4c8-a+b:a+b:$E4:8 --config chain-b:b:$D8 \
  --config w3-a:a:$E3:3 --config w4-a:a:$E4:4 --config pl8-only::1:0:8 \
  --out $R/out/eval.json 2>$L/eval.err | tee $L/eval_summary.json
date
} > $R/progress.log 2>&1
tar czf $R/out/logs.tgz -C $R logs
touch $R/DONE
