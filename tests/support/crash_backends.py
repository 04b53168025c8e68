"""Backends that misbehave on purpose, importable by child processes (tests only)."""

import os
import signal
import time


from swiglu_check.references import gated as ref


def kills_itself(x, *, limit):
    os.kill(os.getpid(), signal.SIGKILL)


def aborts_on_wide(x, *, limit, op):
    """Dies (SIGABRT, like a failed CUDA assert) on wide inputs, fine otherwise."""
    if x.shape[1] > 600:
        os.abort()
    return ref.fused(x, op)


def hangs_on_wide(x, *, limit, op):
    if x.shape[1] > 600:
        time.sleep(120)
    return ref.fused(x, op)


def slow_fused(x, *, limit, op):
    """Correct, but slow enough that a run can be killed in the middle."""
    time.sleep(float(os.environ.get("SC_TEST_SLEEP", "0.4")))
    return ref.fused(x, op)


def writes_half(x, op, out):
    """An out-variant kernel that forgets the second half of each row."""
    y = ref.fused(x, op)
    out[:, : y.shape[1] // 2] = y[:, : y.shape[1] // 2]


def writes_all(x, op, out):
    out.copy_(ref.fused(x, op))
