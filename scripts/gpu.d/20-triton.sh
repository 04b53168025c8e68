#!/usr/bin/env bash
# Triton backends on the GPU: the GPU tests, the `run` checks of issue 3's Done-when list
# (every preset, both layouts, L = 7 and 10, bf16/fp16/fp32; triton-fp8 likewise), and
# `bench` of triton, triton-fp8 and torch-compile (bf16, the issue's shapes plus decode
# sizes). Full output to stdout and $OUT; the short summary (test counts, run verdict
# counts, the bench table) to $SUMMARY. TRITON_TUNE=1 also times launch configurations;
# TRITON_RUNS=0 leaves out the `run` checks (a shorter call).
set -uo pipefail
rc=0
export COLUMNS=${COLUMNS:-200}
RUNS=$(mktemp -d)  # the run reports travel back as one archive (the device returns at most 8 files)
say() { echo "$@" | tee -a "$SUMMARY"; }

# 1. GPU tests (the CPU test files run on CUDA tensors here too)
python3 -m pytest -q -p no:cacheprovider tests/test_triton_gpu.py tests/test_triton_gated.py \
  tests/test_triton_fp8.py tests/test_triton_rounding.py tests/test_gated_fp8_kind.py \
  tests/test_triton_registration.py 2>&1 | tee "$OUT/triton-pytest.log"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
say "GPU tests: $(tail -1 "$OUT/triton-pytest.log")"

# 2. bench (the table goes to the summary)
swiglu-check bench --backend triton,triton-fp8,torch-compile --scale-layout row,col \
  --output "$OUT/triton-bench.json" | tee -a "$SUMMARY"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1

# 3. the Done-when `run` checks, one JSON report each; verdict counts to the summary
run_check() {  # name, args...
  local name=$1; shift
  swiglu-check run "$@" --format json --output "$RUNS/run-$name.json" > /dev/null || rc=1
  python3 - "$RUNS/run-$name.json" "$name" <<'PY' | tee -a "$SUMMARY"
import json, sys
d = json.load(open(sys.argv[1]))
counts = {k: v for k, v in d["summary"].items() if v}
ratios = [r["metrics"]["floor_ratio"] for r in d["results"] if "floor_ratio" in r["metrics"]]
worst = f", floor ratio {min(ratios):.3f}..{max(ratios):.3f}" if ratios else ""
bad = [f'{r["verdict"]} {r["case_id"]}: {"; ".join(r["reasons"])[:150]}' for r in d["results"] if r["verdict"] != "PASS"]
print(f'run {sys.argv[2]:<34} {counts}{worst}', *bad, sep="\n  ")
PY
}
[ "${TRITON_RUNS:-1}" = 1 ] && for op in deepseek-v4 gpt-oss llama gemma; do
  for layout in halves interleaved; do
    run_check "triton-$op-$layout" --backend triton --op "$op" --layout "$layout" --limit 7,10 --dtype bf16,fp16,fp32
  done
done
[ "${TRITON_RUNS:-1}" = 1 ] && for op in deepseek-v4 gpt-oss; do
  for layout in halves interleaved; do
    run_check "fp8-$op-$layout" --backend triton-fp8 --op "$op" --layout "$layout" --limit 7,10 --dtype bf16,fp16,fp32
  done
done
if [ "${TRITON_RUNS:-1}" = 1 ]; then
  run_check "fp8-ue8m0-g64" --backend triton-fp8 --ue8m0 --group-size 64 --limit 10 --dtype bf16
  run_check "fp8-gemma-g32" --backend triton-fp8 --op gemma --group-size 32 --limit 7 --dtype bf16
fi

tar -czf "$OUT/triton-runs.tar.gz" -C "$RUNS" .

# 4. optional: launch-configuration sweep
if [ "${TRITON_TUNE:-0}" = 1 ]; then
  python3 scripts/triton_tune.py --json "$OUT/triton-tune.json" 2>&1 | tee "$OUT/triton-tune.txt" || rc=1
  cat "$OUT/triton-tune.txt" >> "$SUMMARY"
fi
exit $rc
