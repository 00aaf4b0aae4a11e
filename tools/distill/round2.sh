#!/bin/bash
# Round 2 on the GPU machine, run detached (setsid) so that it outlives one call's 10 minutes:
# more LLM data (gen_prev.npz + items2.json.gz), long SSM-A, boost-tuned SSM-B, export, acceptance.
# Expects /root/stage/{gguf/,gen_prev.npz,items2.json.gz,eval_items.json,refs.json} and wheels in /tmp/site.
# Progress: /root/stage/r2/progress.log; outputs: /root/stage/r2/out; /root/stage/r2/DONE when finished.
S=/root/stage; R=$S/r2; C=$R/code
mkdir -p $R/out $R/logs $C; cp tools/distill/*.py $C/
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false DISTILL_LLM_CACHE=$S/llm
G="--gguf-dir $S/gguf"; ARCH="--K 12288 --layers 0,1 --intermediate 960"; L=$R/logs
cd $C
{
date
[ -f $R/gen2.npz ] || python3 generate.py $G --items $S/items2.json.gz --out $R/gen2.npz --max-new 192 \
  --batch ${GEN_BATCH:-1024} --greedy-first --time-budget ${GEN_BUDGET:-220} 2>$L/generate.err | tee $L/generate.json
grep -a -v Converting $L/generate.err | tail -3; date
[ -f $R/a/model.safetensors ] || python3 train.py $G --gen $S/gen_prev.npz,$R/gen2.npz --out $R/a $ARCH --epochs 100 \
  --lr ${LR_A:-1e-3} --bf16 --time-budget ${TA:-480} 2>$L/train_a.err | tee $L/train_a.json
date
[ -f $R/b/model.safetensors ] || python3 train.py $G --gen $S/gen_prev.npz,$R/gen2.npz --out $R/b $ARCH --epochs 100 \
  --lr ${LR_B:-3e-4} --bf16 --time-budget ${TB:-160} --init-from $R/a --boost-from $R/a --boost 3 --seed 1 2>$L/train_b.err | tee $L/train_b.json
date
python3 export.py $R/a $R/xa --name smollm2-draft-a && python3 export.py $R/b $R/xb --name smollm2-draft-b
cp $R/a/train_log.json $L/train_log_a.json; cp $R/b/train_log.json $L/train_log_b.json
for m in a b; do cp $R/x$m/config.json $L/config_$m.json; cp $R/x$m/metrics.json $L/metrics_$m.json
  split -b 15M -d $R/x$m/model.safetensors $R/out/ssm_$m.safetensors.part; done
T=1,1,3,1,1,1,1,1; C8=1,1,1,1,1,1,1,1
python3 evaluate.py $G --items $S/eval_items.json --n 50 --new-tokens 128 --ssm a=$R/xa --ssm b=$R/xb --refs-cache $S/refs.json \
  --config chain-a:a:$C8 --config chain-b:b:$C8 --config tree-a:a:$T --config tree-a+b:a+b:$T \
  --config wide-a+b:a+b:2,2,2,1,1,1,1,1 --config top3x2-a+b:a+b:3,3,1,1,1,1,1,1 \
  --out $L/eval.json 2>$L/eval.err | tee $L/eval_summary.json
date
} > $R/progress.log 2>&1
tar czf $R/out/logs.tgz -C $R logs; cp $R/gen2.npz $R/out/ 2>/dev/null
touch $R/DONE
