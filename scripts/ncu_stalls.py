#!/usr/bin/env python3
"""Where do a kernel's warps wait? Summarize ncu's per-instruction stall sampling.

    ncu --clock-control none --set full --import-source no -k regex:gemm_kernel \\
        --launch-skip 2 --launch-count 1 -o prof python3 scripts/profile_w4a16_cuda.py 1x4096x14336
    ncu -i prof.ncu-rep --page source --csv --print-source sass > prof-sass.csv
    python3 scripts/ncu_stalls.py prof-sass.csv [--top 25]

Prints the samples per stall reason over the kernel, then the instructions with the most
samples (index, samples, times executed, SASS, their three largest reasons): the
instruction a warp waits at names the operand it waits for. Runs anywhere (no GPU).
"""

from __future__ import annotations

import argparse
import collections
import csv
import sys


def load(path: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of ncu's source-page CSV: a kernel-name line, a header, one row per SASS."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    for i, row in enumerate(rows):
        if "Source" in row and "Warp Stall Sampling (All Samples)" in row:
            return row, [r for r in rows[i + 1:] if len(r) == len(row)]
    raise ValueError(f"{path}: no ncu source-page header (export with --page source --csv --print-source sass)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="ncu -i REPORT --page source --csv --print-source sass")
    parser.add_argument("--top", type=int, default=25, help="instructions to list")
    args = parser.parse_args()
    try:
        header, rows = load(args.csv)
    except (OSError, ValueError) as exc:
        print(f"ncu_stalls: {exc}", file=sys.stderr)
        return 2
    col = {name: i for i, name in enumerate(header)}
    reasons = [h for h in header if h.startswith("stall_") and "Not Issued" not in h]

    def number(row: list[str], name: str) -> int:
        return int(row[col[name]].replace(",", "") or 0)

    totals: collections.Counter[str] = collections.Counter()
    for row in rows:
        for reason in reasons:
            totals[reason[len("stall_"):]] += number(row, reason)
    samples = sum(totals.values())
    print(f"{samples} samples over {len(rows)} instructions")
    for reason, count in totals.most_common():
        if count:
            print(f"  {reason:<20} {count:7d} {100 * count / max(samples, 1):5.1f}%")
    print(f"\n{'#':>5} {'samples':>7} {'executed':>9}  instruction")
    ranked = sorted(range(len(rows)), key=lambda i: -number(rows[i], "Warp Stall Sampling (All Samples)"))
    for i in ranked[:args.top]:
        row = rows[i]
        top = sorted(((number(row, r), r[len("stall_"):]) for r in reasons), reverse=True)[:3]
        why = " ".join(f"{name}:{count}" for count, name in top if count)
        print(f"{i:5d} {number(row, 'Warp Stall Sampling (All Samples)'):7d} {number(row, 'Instructions Executed'):9d}"
              f"  {row[col['Source']].strip()[:60]:<60} {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
