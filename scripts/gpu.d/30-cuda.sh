#!/usr/bin/env bash
# CUDA C++ backend: the first-use build (fresh cache, two processes at once, timed), the
# GPU tests, the Done-when `run` checks (every preset, both layouts, an odd width, a
# misaligned column-slice input) and `bench` beside torch-compile, triton and the copy.
set -uo pipefail
rc=0
say() { echo "$*" | tee -a "$SUMMARY"; }
export SWIGLU_CHECK_CACHE="$(mktemp -d /tmp/swiglu-check-cache.XXXXXX)"

echo "== cuda: build into an empty cache ($SWIGLU_CHECK_CACHE) from two processes at once"
start=$(date +%s.%N)
python3 scripts/cuda_gpu.py build > "$OUT/cuda-build-1.log" 2>&1 & first=$!
python3 scripts/cuda_gpu.py build > "$OUT/cuda-build-2.log" 2>&1 & second=$!
wait $first; rc1=$?; wait $second; rc2=$?
built=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
cat "$OUT/cuda-build-1.log" "$OUT/cuda-build-2.log"
if [ $rc1 -ne 0 ] || [ $rc2 -ne 0 ]; then
  say "cuda build FAILED (exit $rc1, $rc2); logs:"
  find "$SWIGLU_CHECK_CACHE" -name build-error.log -exec cat {} \; | tail -60 | tee -a "$SUMMARY"
  exit 1
fi
start=$(date +%s.%N)
python3 scripts/cuda_gpu.py build
reload=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
say "cuda build: two concurrent first-use builds both loaded after ${built} s (wall, incl. python start);" \
    "a third process reused the cache in ${reload} s; cache: $(ls "$SWIGLU_CHECK_CACHE"/cuda)"
grep -h "swiglu-check:" "$OUT"/cuda-build-*.log | tee -a "$SUMMARY"

echo "== cuda: GPU tests"
python3 -m pytest -m gpu tests/test_cuda_gpu.py -q -p no:cacheprovider -o addopts="" -rfEs 2>&1 | tee "$OUT/cuda-pytest.log"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
say "cuda GPU tests: $(tail -1 "$OUT/cuda-pytest.log")"

echo "== cuda: run (Done-when command, default GPU shapes)"
swiglu-check run --backend cuda --limit 7,10,none --dtype bf16,fp16,fp32 | tee "$OUT/cuda-run-table.txt"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
tail -1 "$OUT/cuda-run-table.txt" | sed "s/^/cuda run (deepseek-v4, default GPU shapes): /" | tee -a "$SUMMARY"
swiglu-check run --backend cuda --op gpt-oss --limit 7,10,none --dtype bf16,fp16,fp32 \
  --input-view column-slice --shape 257x13831 --format json --output "$OUT/cuda-run-slice.json" | tee -a "$SUMMARY" || rc=1

echo "== cuda: run matrix (every preset x layout x input view)"
python3 scripts/cuda_gpu.py matrix "$OUT/cuda-matrix.json" | tee -a "$SUMMARY"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1

echo "== cuda: bench"
backends=cuda,torch-compile
if swiglu-check list --format json | python3 -c "import json,sys; sys.exit(0 if any(b['name']=='triton' and b['available'] for b in json.load(sys.stdin)['backends']) else 1)"; then
  backends=cuda,triton,torch-compile
fi
swiglu-check bench --backend "$backends" --dtype bf16 --output "$OUT/cuda-bench.json" | tee -a "$SUMMARY" || rc=1
python3 scripts/cuda_gpu.py targets "$OUT/cuda-bench.json" | tee -a "$SUMMARY"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
swiglu-check bench --backend "${backends%,torch-compile}" --op gpt-oss --dtype bf16 \
  --shape 1024x2048 --shape 16384x7168 --shape 16384x18432 --output "$OUT/cuda-bench-gpt-oss.json" | tee -a "$SUMMARY" || rc=1
python3 scripts/cuda_gpu.py grid "$OUT/cuda-grid.json" | tee -a "$SUMMARY" || rc=1
exit $rc
