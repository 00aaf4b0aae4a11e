#!/bin/bash
# The GPU pipeline, run from the repository root on the device machine.
#   smoke: whole pipeline on a tiny random stand-in LLM (seconds; checks the code paths)
#   full : LLM data generation -> SSM-A -> boost-tuned SSM-B -> fp16 export -> acceptance
# Expects /root/stage/{part_a,whl/,train_items.json.gz,eval_items.json} and
# /root/stage/part_b, tools/distill/.carry/c/part_c (the GGUF travels in three parts: one call carries at most 64 MiB).
set -u
MODE=$1
S=/root/stage; D=tools/distill
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $S/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
cd $D
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
if [ "$MODE" = smoke ]; then
  W=/tmp/smoke; rm -rf $W; mkdir -p $W
  python3 smoke_llm.py $W/llm || exit 1
  export DISTILL_LLM_CACHE=$W/llm
  set -e
  python3 generate.py --items $S/train_items.json.gz --limit 64 --max-new 16 --batch 16 --out $W/gen.npz
  python3 train.py --gen $W/gen.npz --out $W/a --K 12288 --layers 0,1 --intermediate 960 --epochs 1 --max-steps 40 --batch-tokens 4096 --time-budget 5 --val-frac 0.1
  python3 train.py --gen $W/gen.npz --out $W/b --K 12288 --layers 0,1 --intermediate 960 --epochs 1 --max-steps 10 --batch-tokens 4096 --boost-from $W/a --init-from $W/a --bf16 --val-frac 0.1
  [ "${2:-}" = trainonly ] && { echo SMOKE TRAIN OK; exit 0; }
  python3 export.py $W/a $W/xa && python3 export.py $W/b $W/xb
  python3 evaluate.py --items $S/eval_items.json --n 4 --new-tokens 16 --ssm a=$W/xa --ssm b=$W/xb \
    --config chain-a:a:1,1,1,1,1,1,1,1 --config tree-a+b:a+b:1,1,3,1,1,1,1,1 --out $W/eval.json
  ls -la $W/xa; echo SMOKE OK
  exit 0
fi
# full
mkdir -p $S/gguf
[ -f .carry/c/part_c ] && cat $S/part_a $S/part_b .carry/c/part_c > $S/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $S/gguf/SmolLM2-135M-Instruct.Q4_1.gguf" | sha256sum -c || exit 1
export DISTILL_LLM_CACHE=$S/llm
G="--gguf-dir $S/gguf"
BF16=${BF16:-}; B_INIT=${B_INIT:-}   # e.g. BF16=--bf16 B_INIT="--init-from /root/stage/a"
ARCH="--K ${K:-12288} --layers ${LAYERS:-0,1} --intermediate ${INTER:-960}"
L=$OUT/logs; mkdir -p $L
[ -f $S/gen.npz ] || [ ! -f $S/gen_prev.npz ] || cp $S/gen_prev.npz $S/gen.npz
[ -f $S/gen.npz ] || python3 generate.py $G --items $S/train_items.json.gz --out $S/gen.npz --max-new 192 --batch 512 --time-budget ${GEN_BUDGET:-120} 2>$L/generate.err | tee $L/generate.json
[ -f $S/a/model.safetensors ] || python3 train.py $G --gen $S/gen.npz --out $S/a $ARCH --epochs ${EPOCHS_A:-4} --lr ${LR_A:-5e-4} $BF16 --time-budget ${TRAIN_BUDGET:-120} 2>$L/train_a.err | tee $L/train_a.json
[ -f $S/b/model.safetensors ] || python3 train.py $G --gen $S/gen.npz --out $S/b $ARCH --epochs ${EPOCHS_B:-4} --lr ${LR_B:-5e-4} $BF16 --time-budget ${TRAIN_BUDGET_B:-120} $B_INIT --boost-from $S/a --boost ${BOOST:-3} --seed 1 2>$L/train_b.err | tee $L/train_b.json
python3 export.py $S/a $S/xa --name smollm2-draft-a && python3 export.py $S/b $S/xb --name smollm2-draft-b
cp $S/a/train_log.json $L/train_log_a.json; cp $S/b/train_log.json $L/train_log_b.json
T=1,1,3,1,1,1,1,1; C=1,1,1,1,1,1,1,1
python3 evaluate.py $G --items $S/eval_items.json --n 50 --new-tokens 128 --ssm a=$S/xa --ssm b=$S/xb --refs-cache $S/refs.json \
  ${EVAL_CONFIGS:---config chain-a:a:$C --config chain-b:b:$C --config chain-a+b:a+b:$C --config tree-a:a:$T --config tree-b:b:$T --config tree-a+b:a+b:$T} --out $L/eval.json 2>$L/eval.err | tee $L/eval_summary.json
for f in $L/*.err; do echo "== $f"; grep -v -E "Loading|Writing|arn" $f | tail -4; done
cp $S/refs.json $L/ 2>/dev/null
for m in a b; do cp $S/x$m/config.json $L/config_$m.json; cp $S/x$m/metrics.json $L/metrics_$m.json; split -b 15M -d $S/x$m/model.safetensors $OUT/ssm_$m.safetensors.part; done
tar czf $OUT/logs.tgz -C $OUT logs && rm -rf $L
cp $S/gen.npz $OUT/ 2>/dev/null
ls -la $OUT
