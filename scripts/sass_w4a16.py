"""Read the W4A16 dot kernel's main loop off its TTGIR and SASS, without a GPU.

    python3 scripts/sass_w4a16.py [--deq 2,4] [--dtype bf16] [--config JSON] [--dump DIR]

Compiles `_dot_kernel` for sm_90 for NVFP4 and MXFP4, each with its format's M = 64 table
config (or `--config` for both), through Triton's own toolchain (bundled ptxas and nvdisasm), then
prints per variant: SASS instructions in the hot loop (the largest backward-branch
range: one K step), its opcode histogram, global loads other than asynchronous copies
(the block scales), shared-memory traffic (STS/LDS/BAR), conversions (F2F/F2FP/I2F/F2I),
the TTGIR loop's `convert_layout` (Triton 3.6 adds one per wgmma K slice) and local
alloc/load ops, and the layout of the block-scale load (lanes along rows: one cache line
per lane and load). A 64 x 64 x 256 step has 64 * 256 / 128 = 128 weights per thread.
Put another Triton first on PYTHONPATH (e.g. 3.6, the GPU machine's) to read its code.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

os.environ.setdefault("TRITON_INTERPRET", "0")  # compile, even without a CUDA device
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.6's default (the GPU machine's)

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

from swiglu_check.kernels.w4a16 import gemm  # noqa: E402
from swiglu_check.kernels.w4a16.configs import GPU_TABLES, GemmConfig  # noqa: E402
from swiglu_check.references.fp4 import BLOCK_SIZE  # noqa: E402

TYPES = {"bf16": "*bf16", "fp16": "*fp16"}


def compile_dot(fmt: str, dtype: str, cfg: GemmConfig, n: int = 14336, k: int = 4096) -> object:
    """The compiled kernel as a launch with 16-aligned pointers and strides would get it."""
    fn = gemm._dot_kernel
    act = TYPES[dtype]
    signature = {"x_ptr": act, "w_ptr": "*u8", "s_ptr": "*u8", "g_ptr": "*fp32", "y_ptr": act,
                 "part_ptr": "*fp32", "count_ptr": "*i32", "M": "i32", "N": "i32", "K": "i32",
                 "stride_xm": "i32", "stride_wn": "i32", "stride_sn": "i32", "stride_ym": "i32", "SPLIT_K": "i32"}
    constexprs = {"FORMAT": gemm.FORMAT_IDS[fmt], "GROUP": BLOCK_SIZE[fmt], "BLOCK_N": cfg.block_n,
                  "BLOCK_M": cfg.block_m, "BLOCK_K": cfg.block_k, "DEQ": cfg.deq, "DOT_FP32": False,
                  "ASM": True, "EVEN_K": k % cfg.block_k == 0, "PLANT": 0}
    signature.update({name: "constexpr" for name in constexprs})
    aligned = [name for name in signature if name.endswith("_ptr")] + ["N", "K", "stride_xm", "stride_wn",
                                                                        "stride_sn", "stride_ym"]
    attrs = {(fn.arg_names.index(name),): [["tt.divisibility", 16]] for name in aligned}
    src = triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 64),
                          options={"num_warps": cfg.num_warps, "num_stages": cfg.num_stages})


def _tool(name: str, cubin: bytes, *flags: str) -> str:
    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([path, *flags, f.name], check=True, capture_output=True, text=True).stdout


def registers(cubin: bytes) -> int:
    return int(re.search(r"REG:(\d+)", _tool("cuobjdump", cubin, "-res-usage")).group(1))


def hot_loop(lines: list[str]) -> list[str]:
    """Instructions of the largest range [label, backward branch to it]: the K loop."""
    labels, insns = {}, []
    for line in lines:
        label = re.match(r"^\s*(\.L_x_\d+):", line)
        if label:
            labels[label.group(1)] = len(insns)
            continue
        insn = re.search(r"/\*[0-9a-f]{4,}\*/\s+(.*?);", line)
        if insn:
            insns.append(insn.group(1).strip())
    loops = []
    for end, text in enumerate(insns):
        target = re.search(r"BRA\s+.*?`?\(?(\.L_x_\d+)\)?", text)
        if target and labels.get(target.group(1), end + 1) <= end:
            loops.append((labels[target.group(1)], end))
    start, end = max(loops, key=lambda r: r[1] - r[0])
    return insns[start:end + 1]


def opcode(insn: str) -> str:
    return re.sub(r"^@!?U?P\w+\s+", "", insn).split()[0]


def ttgir_loop(ttgir: str) -> collections.Counter:
    """Op counts inside the outermost scf.for of the kernel."""
    body, depth, inside = collections.Counter(), 0, False
    for line in ttgir.splitlines():
        if not inside and "scf.for" in line:
            inside, depth = True, 0
        if inside:
            op = re.search(r"=\s+\"?([a-z_]+\.[a-z_.]+)", line) or re.search(r"^\s*\"?([a-z_]+\.[a-z_.]+)", line)
            if op:
                body[op.group(1)] += 1
            depth += line.count("{") - line.count("}")
            if depth <= 0 and "}" in line:
                break
    return body


def scale_load_layout(ttgir: str) -> str:
    """The layout of the loop's block-scale load (`next_scale_bytes` in _dot_kernel)."""
    load = re.search(r"next_scale_bytes\S* = tt\.load [^:]*: tensor<[^,]*, (#\w+)>", ttgir)
    if not load:
        return "?"
    layout = re.search(rf"^{load.group(1)} = #ttg\.blocked<\{{(.*)\}}>", ttgir, re.M)
    return layout.group(1) if layout else load.group(1)


def report(fmt: str, dtype: str, cfg: GemmConfig, dump: str | None) -> dict:
    kernel = compile_dot(fmt, dtype, cfg)
    lines = _tool("nvdisasm", kernel.asm["cubin"], "-c").splitlines()
    loop = hot_loop(lines)
    ops = collections.Counter(opcode(i) for i in loop)
    family = collections.Counter(op.split(".")[0] for op in ops.elements())
    tt = ttgir_loop(kernel.asm["ttgir"])
    if dump:
        os.makedirs(dump, exist_ok=True)
        stem = os.path.join(dump, f"{fmt}-{dtype}-{cfg.label}")
        for ext, text in (("ttgir", kernel.asm["ttgir"]), ("ptx", kernel.asm["ptx"]), ("sass", "\n".join(lines))):
            with open(f"{stem}.{ext}", "w") as f:
                f.write(text)
    return {
        "variant": f"{fmt} {dtype} {cfg.label}", "loop": len(loop), "regs": registers(kernel.asm["cubin"]),
        "smem": kernel.metadata.shared,
        "LDG": family["LDG"], "STS": family["STS"], "LDS": family["LDS"] + family["LDSM"], "BAR": family["BAR"],
        "cvt": family["F2F"] + family["F2FP"] + family["I2F"] + family["F2I"],
        "MMA": family["HGMMA"] + family["HMMA"], "top": ops.most_common(12),
        "convert_layout": tt["ttg.convert_layout"], "local": tt["ttg.local_alloc"] + tt["ttg.local_load"],
        "scale_layout": scale_load_layout(kernel.asm["ttgir"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deq", default="2", help="recipes to compare (comma-separated)")
    parser.add_argument("--dtype", default="bf16,fp16")
    parser.add_argument("--config", help="GemmConfig fields as JSON (default: each format's M = 64 table row)")
    parser.add_argument("--dump", help="write ttgir/ptx/sass here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    given = GemmConfig(**json.loads(args.config)) if args.config else None
    rows = []
    for deq in (int(d) for d in args.deq.split(",")):
        for dtype in args.dtype.split(","):
            for fmt in BLOCK_SIZE:
                base = given or GPU_TABLES[fmt][-1][1]
                row = report(fmt, dtype, GemmConfig(**{**base.__dict__, "deq": deq, "split_k": 1}), args.dump)
                rows.append(row)
                if args.json:
                    continue
                print(f"{row['variant']:<34s} loop {row['loop']:4d} SASS | LDG {row['LDG']:2d} STS {row['STS']:3d}"
                      f" LDS {row['LDS']:3d} BAR {row['BAR']:2d} | cvt {row['cvt']:3d} MMA {row['MMA']:3d}"
                      f" | regs {row['regs']}"
                      f" smem {row['smem']} | ttgir loop: convert_layout {row['convert_layout']},"
                      f" local alloc/load {row['local']}")
                print("    " + ", ".join(f"{op} {n}" for op, n in row["top"]))
                print("    scale load:", row["scale_layout"])
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
