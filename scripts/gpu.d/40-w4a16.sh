#!/usr/bin/env bash
# W4A16 GEMM (issue 5): GPU tests, the `run` checks for both formats in bf16 and fp16,
# and the bench rows against cuBLAS. W4A16_TUNE=1 first runs the tile tuner.
set -uo pipefail
rc=0
# at most 8 files come back from $OUT: the tuner's full outputs stay in $SCRATCH (its
# summary, table included, goes to the log and the summary)
SCRATCH=${SCRATCH:-/tmp/gpu-check-scratch}; mkdir -p "$SCRATCH"
if [ "${W4A16_TUNE:-0}" = "1" ]; then
  python3 scripts/tune_w4a16.py --out "$SCRATCH/w4a16-tune.json" --table "$SCRATCH/w4a16-table.json" \
    --budget-s "${W4A16_TUNE_BUDGET:-200}" > "$SCRATCH/w4a16-tune.log" 2>&1 || rc=1
  grep -E "^(device|precompiled|copy|nvfp4|mxfp4|bucket)" "$SCRATCH/w4a16-tune.log"
  sed -n '/==== tune summary/,$p' "$SCRATCH/w4a16-tune.log" | tee -a "$SUMMARY"
  # the rest of this part runs on the freshly tuned tables (kernels/w4a16/configs.py, TABLE_ENV)
  [ -s "$SCRATCH/w4a16-table.json" ] && export SWIGLU_CHECK_W4A16_TABLE="$SCRATCH/w4a16-table.json"
fi
# the CUDA C++ GEMM: build (timed), then its GPU tests with the Triton GEMM's
start=$(date +%s)
python3 -c "from swiglu_check.kernels.w4a16 import cuda_gemm; cuda_gemm.EXTENSION.ensure_loaded()" 2>&1 | tail -3
echo "W4A16 CUDA extension ready after $(( $(date +%s) - start )) s" | tee -a "$SUMMARY"
python3 -m pytest -q -rf --tb=line -m gpu tests/test_w4a16_gemm.py tests/test_w4a16_cuda.py tests/test_fp4.py 2>&1 \
  | tail -n 30 | tee -a "$SUMMARY"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
if [ "${W4A16_CUDA_TUNE:-1}" = "1" ]; then
  python3 scripts/tune_w4a16_cuda.py --json "$OUT/w4a16-cuda-tune.json" --table "$SCRATCH/w4a16-cuda-table.json" \
    2>&1 | tee -a "$SUMMARY"
  [ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
  # the rest of this part (run, bench) uses the table just tuned
  [ -s "$SCRATCH/w4a16-cuda-table.json" ] && export SWIGLU_CHECK_W4A16_CUDA_TABLE="$SCRATCH/w4a16-cuda-table.json" \
    && cat "$SCRATCH/w4a16-cuda-table.json" | tee -a "$SUMMARY"
fi
if [ "${W4A16_QUICK:-0}" = "1" ]; then exit $rc; fi  # tuning call: the tuner's table says enough
swiglu-check run --backend w4a16-nvfp4,w4a16-mxfp4,w4a16-nvfp4-cuda,w4a16-mxfp4-cuda,torch-w4a16 --dtype bf16,fp16 \
  --format json --output "$OUT/w4a16-run.json" || rc=1
python3 - "$OUT/w4a16-run.json" <<'PY' | tee -a "$SUMMARY"
import json, sys
d = json.load(open(sys.argv[1]))
print("linear-w4a16 run on", d["environment"].get("device_name"), d["summary"])
print(f'{"verdict":<7} {"case":<46} {"rel-L2":>9} {"floor":>9} {"ratio":>6} {"ULP":>4} {"FP4 q-err":>9}')
for r in d["results"]:
    m = r["metrics"]
    print(f'{r["verdict"]:<7} {r["case_id"]:<46} {m.get("rel_l2", float("nan")):9.3e} {m.get("floor", float("nan")):9.3e}'
          f' {m.get("floor_ratio", float("nan")):6.3f} {m.get("ulp_max", -1):>4} {m.get("quant_rel_l2", float("nan")):9.4f}')
PY
swiglu-check bench --backend w4a16-nvfp4,w4a16-mxfp4,w4a16-nvfp4-cuda,w4a16-mxfp4-cuda --dtype bf16 --output "$OUT/w4a16-bench.json" || rc=1
python3 - "$OUT/w4a16-bench.json" <<'PY' | tee -a "$SUMMARY"
import json, sys
d = json.load(open(sys.argv[1]))
rows = {}
for t in d["timings"]:
    key = tuple(t["params"]["shape"])
    name = t["backend"] if t["params"].get("format") else "cublas"
    rows.setdefault(key, {})[name] = t
print(f'W4A16 GEMM bench on {d["environment"].get("device_name")}, bf16, copy {d["copy_gb_per_s"]:.0f} GB/s')
names = ["w4a16-nvfp4", "w4a16-mxfp4", "w4a16-nvfp4-cuda", "w4a16-mxfp4-cuda"]
heads = ["NVFP4 tri", "MXFP4 tri", "NVFP4 cuda", "MXFP4 cuda"]
print(f'{"M x K x N":<18} {"cuBLAS us":>9} ' + " ".join(f'{h:>10} {"x":>6} {"floor":>6}' for h in heads))
for (m, k, n), r in rows.items():
    def cell(fmt):
        t = r.get(fmt)
        if not t or t.get("error"):
            return f'{"-":>10} {"-":>6} {"-":>6}'
        floor = t["median_us"] * t["pct_copy"] / 100
        return f'{t["median_us"]:10.1f} {t["speedup"] or 0:5.2f}x {floor:6.1f}'
    ref = r.get("cublas", {}).get("median_us", float("nan"))
    print(f'{m}x{k}x{n:<10} {ref:9.1f} ' + " ".join(cell(name) for name in names))
PY
exit $rc
