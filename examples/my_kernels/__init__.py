"""An example package of gated-activation kernels to check with swiglu-check.

    swiglu-check run --backend my_kernels.ops:swiglu_fp32_math --limit 7,10 --dtype bf16,fp16
    swiglu-check diagnose --backend my_kernels.ops:swiglu_forgets_clamp --limit 7 --dtype bf16

(run from the examples/ folder, or with it on PYTHONPATH).
"""
