"""The float64 reference works in row chunks: a case's extra memory stays near its input size.

Measured in a child process as the rise of its resident-set high-water mark, reset just
before the measurement (`/proc/self/clear_refs`), with glibc told to serve every large
allocation by mmap so that freed chunks leave the resident set at once (otherwise its
dynamic threshold keeps them in the heap and the number depends on history).
"""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys, torch
    from swiglu_check.inputs import InputSpec, gated_input
    from swiglu_check.kinds.gated import measure
    from swiglu_check.ops import OpSpec

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024

    tokens, width, budget = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    op = OpSpec(limit=7.0)
    warm = gated_input(4, 64, dtype=torch.bfloat16, limit=7.0, spec=InputSpec(), seed=0)
    measure(op, warm, warm[:, :64].clone())
    x = gated_input(tokens, width, dtype=torch.bfloat16, limit=7.0, spec=InputSpec(), seed=0)
    y = x[:, :width].clone()
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current resident set
    measure(op, x, y, None if budget == "auto" else int(budget))
    print((status("VmHWM") - before) / (x.numel() * x.element_size()))
""")


def extra_over_input(tokens: int, width: int, budget: str) -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tokens), str(width), budget],
                         capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc/self/clear_refs")
def test_reference_memory_stays_within_three_times_the_input():
    assert extra_over_input(1024, 8192, "auto") <= 3.0


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc/self/clear_refs")
def test_the_memory_measurement_can_fail():
    # without chunking (one chunk of everything) the float64 temporaries are ~20x the input
    assert extra_over_input(1024, 8192, str(1 << 40)) > 6.0
