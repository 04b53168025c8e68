#!/usr/bin/env bash
# Speed of the gated backends (issues 3 and 4), in about 4 minutes: GPU tests of graph
# capture and of the tuning variants, `bench` of triton, cuda, torch-compile and
# triton-fp8 at the issues' six shapes timed by events (the issues' method) and by CUDA
# graph, the speed targets of both runs, and the two launch-configuration sweeps.
#
#   GPU_CHECK_ONLY=speed bash scripts/gpu-check
#   SPEED_TUNE=0 ...   leaves out the sweeps (about half the time)
#
# Files under $OUT: speed-pytest.log, speed-bench-{events,graph}.{json,txt},
# speed-targets.txt, cuda-tune.{json,txt}, triton-tune.{json,fp8.json,txt}.
# $SUMMARY (printed last by gpu-check): test counts, the targets table of each timing
# method (us, % copy, % same-size copy, x torch-compile, x triton per backend and shape)
# and the best configuration per shape of each sweep.
set -uo pipefail
rc=0
export COLUMNS=${COLUMNS:-250}
say() { echo "$*" | tee -a "$SUMMARY"; }
SHAPES=(--shape 1024x2048 --shape 1024x7168 --shape 1024x18432 --shape 16384x2048 --shape 16384x7168
        --shape 16384x18432)
start=$(date +%s)
stamp() { echo "   (+$(( $(date +%s) - start )) s)"; }

echo "== speed: build or load the cuda extension"
python3 scripts/cuda_gpu.py build 2>&1 | tail -3 || rc=1
stamp

echo "== speed: GPU tests (graph capture of every gated backend; cuda variants; triton on the GPU)"
python3 -m pytest -q -p no:cacheprovider -o addopts="" -rfE tests/test_bench_gpu.py tests/test_triton_gpu.py \
  tests/test_cuda_gpu.py -k "bench or triton_gpu or bit_for_bit or fast_math or nan" 2>&1 \
  | tee "$OUT/speed-pytest.log"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
say "GPU tests (graph capture, cuda variants, triton): $(tail -1 "$OUT/speed-pytest.log")"
grep -E "^(FAILED|ERROR)" "$OUT/speed-pytest.log" | head -12 | tee -a "$SUMMARY"
stamp

for timing in events graph; do
  echo "== speed: bench --timing $timing"
  swiglu-check bench --backend triton,cuda,torch-compile,triton-fp8 --op deepseek-v4 --dtype bf16 "${SHAPES[@]}" \
    --timing "$timing" --output "$OUT/speed-bench-$timing.json" | tee "$OUT/speed-bench-$timing.txt"
  [ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
  stamp
done

echo "== speed: targets"
python3 scripts/cuda_gpu.py targets "$OUT/speed-bench-events.json" "$OUT/speed-bench-graph.json" \
  > "$OUT/speed-targets.txt" 2>&1
targets_rc=$?
cat "$OUT/speed-targets.txt"
[ "$targets_rc" -eq 2 ] && rc=1  # a missing bench file; a missed target (1) is reported, not a failure of the part

if [ "${SPEED_TUNE:-1}" = 1 ]; then
  echo "== speed: cuda launch configurations"
  python3 scripts/cuda_tune.py --json "$OUT/cuda-tune.json" 2>&1 | tee "$OUT/cuda-tune.txt"
  [ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
  stamp
  echo "== speed: triton launch configurations"
  python3 scripts/triton_tune.py --json "$OUT/triton-tune.json" 2>&1 | tee "$OUT/triton-tune.txt"
  [ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
  stamp
fi

{
  echo
  cat "$OUT/speed-targets.txt"
  for sweep in cuda-tune triton-tune; do
    [ -f "$OUT/$sweep.txt" ] || continue
    echo
    echo "$sweep: best configuration per shape (full tables in $sweep.txt)"
    grep -E "^[0-9]+x[0-9]+ +(events|graph) +best" "$OUT/$sweep.txt"
  done
  echo "speed part: $(( $(date +%s) - start )) s"
} >> "$SUMMARY"
exit $rc
