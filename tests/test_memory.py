"""The float64 reference works in row chunks: a case's extra memory stays near its input size."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    from swiglu_check.inputs import InputSpec, gated_input
    from swiglu_check.kinds.gated import measure
    from swiglu_check.ops import OpSpec

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    tokens, width, budget = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    op = OpSpec(limit=7.0)
    warm = gated_input(4, 64, dtype=torch.bfloat16, limit=7.0, spec=InputSpec(), seed=0)
    measure(op, warm, warm[:, :64].clone())
    x = gated_input(tokens, width, dtype=torch.bfloat16, limit=7.0, spec=InputSpec(), seed=0)
    y = x[:, :width].clone()
    before = rss()
    measure(op, x, y, None if budget == "auto" else int(budget))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print((peak - before) / (x.numel() * x.element_size()))
""")


def extra_over_input(tokens: int, width: int, budget: str) -> float:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tokens), str(width), budget],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_reference_memory_stays_within_three_times_the_input():
    assert extra_over_input(1024, 8192, "auto") <= 3.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_the_memory_measurement_can_fail():
    # without chunking (one chunk of everything) the float64 temporaries are ~20x the input
    assert extra_over_input(1024, 8192, str(1 << 40)) > 6.0
