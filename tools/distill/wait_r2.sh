#!/bin/bash
# Wait (at most $1 seconds) for round2.sh; show progress; when finished, hand its outputs back via $OUT.
R=/root/stage/r2; end=$((SECONDS + $1))
while [ ! -f $R/DONE ] && [ $SECONDS -lt $end ]; do sleep 3; done
cat $R/progress.log | tr '\r' '\n' | grep -a -v -E "Converting|^\s*$" | tail -40
for f in $R/logs/*.err; do echo "== $f"; tr '\r' '\n' < $f | grep -a -v -E "Converting|Loading|Writing|^\s*$" | tail -6; done
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv,noheader
cp $R/out/* $R/logs/eval.json $OUT/ 2>/dev/null; ls -la $OUT; [ -f $R/DONE ] && echo R2 DONE
