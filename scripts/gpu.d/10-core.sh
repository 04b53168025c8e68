#!/usr/bin/env bash
# Core on the GPU: `list`, the README's main command with every available backend at the
# default GPU shapes, the torch backends over limits and dtypes, and their bench rows.
set -uo pipefail
rc=0
export COLUMNS=${COLUMNS:-200}
swiglu-check list | tee -a "$SUMMARY"

echo "== swiglu-check run --limit 7 --dtype bf16 (every available backend)" | tee -a "$SUMMARY"
swiglu-check run --limit 7 --dtype bf16 --output-json "$OUT/core-readme-run.json" | tee "$OUT/core-readme-run.txt"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
cat "$OUT/core-readme-run.txt" >> "$SUMMARY"

swiglu-check run --backend torch-eager,torch-compile --limit 7,none --dtype bf16,fp16,fp32 \
  --format json --output "$OUT/core-run.json" > /dev/null || rc=1
python3 - "$OUT/core-run.json" <<'PY' | tee -a "$SUMMARY"
import json, sys
d = json.load(open(sys.argv[1]))
print("torch backends, limits 7/none x bf16/fp16/fp32 x default GPU shapes:", {k: v for k, v in d["summary"].items() if v})
rows = {}
for r in d["results"]:
    key = (r["backend"], r["params"]["dtype"], r["params"]["limit"])
    rows.setdefault(key, []).append(r["metrics"].get("floor_ratio", float("nan")))
for (backend, dtype, limit), ratios in sorted(rows.items(), key=str):
    print(f"  {backend:<14} {dtype:<5} L={str(limit):<5} floor ratio {min(ratios):.3f}..{max(ratios):.3f}")
for r in d["results"]:
    if r["verdict"] != "PASS":
        print("  ", r["verdict"], r["case_id"], "; ".join(r["reasons"])[:200])
PY

swiglu-check bench --backend torch-eager,torch-compile --output "$OUT/core-bench.json" | tee -a "$SUMMARY"
[ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
exit $rc
