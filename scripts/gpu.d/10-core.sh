#!/usr/bin/env bash
# Core: the torch backends on the GPU with default shapes, and their bench rows.
set -uo pipefail
rc=0
swiglu-check list
swiglu-check run --backend torch-eager,torch-compile --limit 7,none --dtype bf16,fp16,fp32 \
  --format json --output "$OUT/core-run.json" || rc=1
python3 - "$OUT/core-run.json" <<'PY' | tee -a "$SUMMARY"
import json, sys
d = json.load(open(sys.argv[1]))
print("core run on", d["environment"].get("device_name"), d["summary"])
for r in d["results"]:
    m = r["metrics"]
    print(f'{r["verdict"]:<5} {r["case_id"]:<48} rel-L2 {m.get("rel_l2", float("nan")):.3e} floor ratio {m.get("floor_ratio", float("nan")):.3f}')
PY
swiglu-check bench --backend torch-eager,torch-compile --output "$OUT/core-bench.json" | tee -a "$SUMMARY" || rc=1
exit $rc
