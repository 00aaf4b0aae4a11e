#!/bin/bash
# Wait (at most $1 seconds) for round3.sh; print its progress; copy what exists of its outputs to $OUT
# (at most 8 files of <= 15 MiB: the split Q8_0 GGUFs (2 x 2 parts), their sha256s... see below).
S=${S:-/root/stage}; R=${R:-$S/r3}; end=$((SECONDS + ${1:-60}))
while [ ! -f $R/DONE ] && [ $SECONDS -lt $end ]; do sleep 3; done
tr '\r' '\n' < $R/progress.log | grep -a -v -E "Converting|Loading weights|^\s*$" | tail -40
for f in $R/logs/*.err; do echo "== $f"; tr '\r' '\n' < $f | grep -a -v -E "Converting|Loading|Writing|arn|^\s*$" | tail -5; done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv,noheader
if [ -n "${OUT:-}" ]; then
  # 8 files at most: 4 GGUF parts (2 x <= 15 MiB each), both sha256s in one file, eval.json, logs
  cp $R/out/ssm_*.gguf.part* $OUT/ 2>/dev/null
  cat $R/out/ssm_*.gguf.sha256 > $OUT/sha256.txt 2>/dev/null
  cp $R/out/eval.json $OUT/ 2>/dev/null
  if [ -f $R/out/logs.tgz ]; then cp $R/out/logs.tgz $OUT/; else tar czf $OUT/logs.tgz -C $R logs progress.log 2>/dev/null; fi
  ls -la $OUT
fi
[ -f $R/DONE ] && echo R3 DONE
