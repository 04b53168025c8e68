import math

import pytest

from swiglu_check.errors import InputError
from swiglu_check.ops import PRESETS, OpSpec, build_op, parse_limit, parse_limits


def test_presets_match_the_design():
    assert PRESETS["deepseek-v4"] == OpSpec("silu", 1.0, 0.0, 10.0, "halves")
    assert PRESETS["gpt-oss"] == OpSpec("silu", 1.702, 1.0, 7.0, "interleaved")
    assert PRESETS["llama"] == OpSpec("silu", 1.0, 0.0, None, "halves")
    assert PRESETS["gemma"] == OpSpec("gelu_tanh", 1.0, 0.0, None, "halves")


@pytest.mark.parametrize("spec", [*PRESETS.values(), OpSpec("gelu", 1.5, -0.25, 3.0, "interleaved", "post")])
def test_label_round_trips(spec):
    assert OpSpec.from_label(spec.label, spec.limit) == spec


def test_overrides_replace_preset_fields():
    spec = build_op("gpt-oss", activation="gelu_tanh", layout="halves", alpha=1.0, beta=0.0)
    assert spec == OpSpec("gelu_tanh", 1.0, 0.0, 7.0, "halves")


@pytest.mark.parametrize("text", ["0", "-3", "nan", "inf", "-inf", "seven", ""])
def test_bad_limits_are_input_errors(text):
    with pytest.raises(InputError):
        parse_limit(text)


def test_limits_parse_lists_and_none():
    assert parse_limits(["7,10", "none", "7"]) == [7.0, 10.0, None]
    assert parse_limit("NONE") is None


@pytest.mark.parametrize("bad", [dict(activation="relu"), dict(layout="rows"), dict(clamp="mid"),
                                 dict(alpha=math.nan), dict(beta=math.inf), dict(limit=-1.0)])
def test_bad_fields_are_input_errors(bad):
    with pytest.raises(InputError):
        OpSpec(**bad)


def test_unknown_preset():
    with pytest.raises(InputError, match="presets"):
        build_op("mixtral")
