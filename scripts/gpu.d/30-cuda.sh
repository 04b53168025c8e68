#!/usr/bin/env bash
# CUDA C++ backend: the first-use build (fresh cache, two processes at once, timed), the
# GPU tests, the Done-when `run` checks (every preset, both layouts, an odd width, a
# misaligned column-slice input) and `bench` beside torch-compile, triton and the copy.
# Files under $OUT (8 at most come back from the device): cuda-build.log, cuda-pytest.log,
# cuda-run-table.txt, cuda-matrix.json, cuda-bench.json, cuda-tune.json (CUDA_TUNE=1).
set -uo pipefail
rc=0
say() { echo "$*" | tee -a "$SUMMARY"; }
export SWIGLU_CHECK_CACHE="$(mktemp -d /tmp/swiglu-check-cache.XXXXXX)"

echo "== cuda: build into an empty cache ($SWIGLU_CHECK_CACHE) from two processes at once"
c++ --version | head -1
start=$(date +%s.%N)
python3 scripts/cuda_gpu.py build > "$OUT/cuda-build-1.tmp" 2>&1 & first=$!
python3 scripts/cuda_gpu.py build > "$OUT/cuda-build-2.tmp" 2>&1 & second=$!
wait $first; rc1=$?; wait $second; rc2=$?
built=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
cat "$OUT/cuda-build-1.tmp" "$OUT/cuda-build-2.tmp" > "$OUT/cuda-build.log"; rm -f "$OUT"/cuda-build-*.tmp
cat "$OUT/cuda-build.log"
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
grep -h "swiglu-check:" "$OUT/cuda-build.log" | tee -a "$SUMMARY"

echo "== cuda: bad arguments, one process, one line each"
python3 -X faulthandler scripts/cuda_gpu.py errors 2>&1 | tee -a "$OUT/cuda-build.log"
errors_rc=${PIPESTATUS[0]}
say "cuda bad-argument calls: exit $errors_rc"

echo "== cuda: GPU tests"
isolate=""
python3 -c "import xdist" 2>/dev/null && isolate="-n 1 --max-worker-restart=8"  # a crash fails one test, not the run
python3 -m pytest -m gpu tests/test_cuda_gpu.py -q -p no:cacheprovider -o addopts="" -rfE $isolate 2>&1 \
  | tee "$OUT/cuda-pytest.log"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
say "cuda GPU tests: $(grep -E '(passed|failed|error)' "$OUT/cuda-pytest.log" | tail -1)"
grep -E "^(FAILED|ERROR)|crashed" "$OUT/cuda-pytest.log" | head -20 | tee -a "$SUMMARY"

echo "== cuda: run (Done-when command, default GPU shapes)"
swiglu-check run --backend cuda --limit 7,10,none --dtype bf16,fp16,fp32 | tee "$OUT/cuda-run-table.txt"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
tail -1 "$OUT/cuda-run-table.txt" | sed "s/^/cuda run (deepseek-v4, default GPU shapes): /" | tee -a "$SUMMARY"
swiglu-check run --backend cuda --op gpt-oss --limit 7,10,none --dtype bf16,fp16,fp32 \
  --input-view column-slice --shape 257x13831 | tee -a "$OUT/cuda-run-table.txt"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
tail -1 "$OUT/cuda-run-table.txt" | sed "s/^/cuda run (gpt-oss, column-slice, 257x13831): /" | tee -a "$SUMMARY"

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
  --shape 1024x2048 --shape 1024x18432 --shape 16384x7168 --shape 16384x18432 | tee -a "$SUMMARY" || rc=1
if [ "${CUDA_TUNE:-0}" = 1 ]; then  # launch configurations against triton (also in the `speed` part)
  python3 scripts/cuda_tune.py --json "$OUT/cuda-tune.json" | tee -a "$SUMMARY" || rc=1
fi

if [ "$errors_rc" -ne 0 ] || grep -q "crashed" "$OUT/cuda-pytest.log"; then
  echo "== cuda: a process crashed; native backtrace under cuda-gdb (bounded)"
  if [ "$errors_rc" -ne 0 ]; then
    target=(python3 scripts/cuda_gpu.py errors)
  else
    target=(python3 -m pytest -q -p no:cacheprovider -p no:xdist -o addopts="" tests/test_cuda_gpu.py
            -k "operator_defaults or current_stream or bad_arguments")
  fi
  timeout 170 cuda-gdb -q -batch -ex run -ex bt "--args" "${target[@]}" 2>&1 | grep -v "^\[New Thread\|^\[Thread\|^\[Detaching" \
    | tail -45 | tee -a "$SUMMARY"
  rc=1
fi
exit $rc
