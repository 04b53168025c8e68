#!/usr/bin/env bash
# W4A16 MoE (issue 6): GPU tests, the dsv4-flash sweep (moe-w4a16 and the torch reference),
# and the bench rows against the same layer with bf16 weights. MOE_TUNE=1 first runs the
# config tuner and uses its table for the rest of the part.
set -uo pipefail
rc=0
SCRATCH=${SCRATCH:-/tmp/gpu-check-scratch}; mkdir -p "$SCRATCH"  # at most 8 files come back from $OUT
if [ "${MOE_TUNE:-0}" = "1" ]; then
  python3 scripts/tune_moe_w4a16.py --out "$SCRATCH/moe-tune.json" --table "$SCRATCH/moe-table.json" \
    --budget-s "${MOE_TUNE_BUDGET:-120}" > "$SCRATCH/moe-tune.log" 2>&1 || rc=1
  grep -E "^(precompiled|  WRONG|nvfp4|mxfp4)" "$SCRATCH/moe-tune.log"
  sed -n '/==== MoE tune summary/,$p' "$SCRATCH/moe-tune.log" | tee -a "$SUMMARY"
  [ -s "$SCRATCH/moe-table.json" ] && export SWIGLU_CHECK_MOE_W4A16_TABLE="$SCRATCH/moe-table.json"
fi
python3 -m pytest -q -m gpu tests/test_w4a16_moe.py 2>&1 | tail -n 8 | tee -a "$SUMMARY"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
swiglu-check run --backend moe-w4a16,moe-w4a16-cuda,torch-moe-w4a16 --sweep dsv4-flash \
  --format json --output "$OUT/moe-sweep.json" || rc=1
python3 - "$OUT/moe-sweep.json" <<'PY' | tee -a "$SUMMARY"
import json, sys
d = json.load(open(sys.argv[1]))
print("moe-w4a16 dsv4-flash sweep on", d["environment"].get("device_name"), d["summary"])
print(f'{"verdict":<7} {"backend":<16} {"fmt":<5} {"L":>3} {"global":>6} {"rel-L2":>9} {"floor":>9} {"ratio":>6}'
      f' {"gate>L":>7} {"|up|>L":>7} {"disc.pow":>9} {"post-pow":>8} {"recipe":>9}')
for r in d["results"]:
    m, p = r["metrics"], r["params"]
    g = "-" if p.get("global_exp") is None else f'2^{p["global_exp"]}'
    print(f'{r["verdict"]:<7} {r["backend"]:<16} {p["format"]:<5} {p["limit"]:>3g} {g:>6} {m.get("rel_l2", float("nan")):9.3e}'
          f' {m.get("floor", float("nan")):9.3e} {m.get("floor_ratio", float("nan")):6.3f} {m.get("gate_above", 0):7.1%}'
          f' {m.get("up_outside", 0):7.1%} {m.get("discriminative_power", float("nan")):9.1f}'
          f' {m.get("other_clamp_power", float("nan")):8.2f} {m.get("recipe_rel_l2", float("nan")):9.3e}')
    for reason in r["reasons"]:
        print("        ", reason)
PY
swiglu-check bench --backend moe-w4a16,moe-w4a16-cuda --dtype bf16 --output "$OUT/moe-bench.json" || rc=1
python3 - "$OUT/moe-bench.json" <<'PY' | tee -a "$SUMMARY"
import json, sys
d = json.load(open(sys.argv[1]))
print(f'W4A16 MoE bench on {d["environment"].get("device_name")} (CUDA-graph device time), copy {d["copy_gb_per_s"]:.0f} GB/s')
print(f'{"row":<58} {"us":>8} {"floor us":>8} {"vs torch":>8}')
for t in d["timings"]:
    floor = t["median_us"] * t["pct_copy"] / 100 if t["pct_copy"] == t["pct_copy"] else float("nan")
    ratio = "ref" if t["reference"] else (f'{t["speedup"]:.2f}x' if t["speedup"] else "-")
    print(f'{t["backend"] + " | " + t["label"]:<58} {t["median_us"]:8.1f} {floor:8.1f} {ratio:>8} {t["error"][:60]}')
PY
exit $rc
