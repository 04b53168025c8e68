#!/usr/bin/env bash
# diagnose on the GPU: every available gated backend against three ops in bf16 (and
# deepseek-v4 in fp16), at the default probe size. The sentence of each is the summary. A backend whose best
# match is not the asked op (exit 1) is a finding; exit 2 (bad input) fails the part.
set -uo pipefail
rc=0
backends=$(swiglu-check list --format json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(b["name"] for b in d["backends"] if b["kind"] == "gated" and b["available"] and "cuda" in b["devices"] and b["name"] != "torch-compile"))  # torch-compile: 20 s of Inductor per probe limit, same math as the fused recipe')
for backend in $backends; do
  for case in "deepseek-v4:bf16" "deepseek-v4:fp16" "gpt-oss:bf16" "gemma --activation gelu:bf16"; do
    spec=${case%%:*}; dtype=${case##*:}
    name="$OUT/diagnose-$backend-${spec%% *}-$dtype.json"
    # shellcheck disable=SC2086
    swiglu-check diagnose --backend "$backend" --op $spec --dtype "$dtype" --device cuda --format json > "$name"
    code=$?
    [ "$code" -eq 2 ] && rc=1
    python3 - "$name" "$code" "$spec" <<'PY' | tee -a "$SUMMARY"
import json, sys
path, code, spec = sys.argv[1:]
try:
    d = json.load(open(path))
except Exception as exc:  # exit 2 writes nothing to stdout
    print(f"exit {code} {spec}: no report ({exc})")
    sys.exit(0)
print(f'exit {code} {d["backend"]} {spec} {d["dtype"]}: {d["sentence"]}')
PY
  done
done
exit $rc
