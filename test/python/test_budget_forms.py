"""The budget rules exist in two forms: routing::setBudget (C++, used by the
canonicalizer to fold a static T, by Python and by the CUDA runtime) and
RouterAttrInterface::buildSetBudget (the IR the lowered code runs for a
dynamic T). The same router must select the same number of pairs both ways,
extreme values included."""

import numpy as np
import pytest

import usmoe
from usmoe import cuda

IR = """
func.func @f(%l: tensor<1x{T}x{E}xf32>) -> tensor<1x{T}x{E}xi1> {{
  %g, %m = moe.route {ROUTER} %l : tensor<1x{T}x{E}xf32>
  return %m : tensor<1x{T}x{E}xi1>
}}
"""

CASES = [
    ("expert", dict(capacity_factor=1.25, k=2)),
    ("expert", dict(capacity_factor=0.01, k=1)),
    ("expert", dict(capacity_factor=1e300, k=8)),
    ("expert", dict(capacity_factor=3.7, k=3)),
    ("unified", dict(k=1.5)),
    ("unified", dict(k=0.1)),
    ("unified", dict(k=7.999999)),
    ("unified", dict(k=2.0 / 3.0)),
]


@pytest.mark.parametrize("mode, options", CASES)
@pytest.mark.parametrize("tokens", [1, 3, 7, 33])
def test_static_and_dynamic_budgets_agree(mode, options, tokens):
    e = 8
    router = cuda.RouterOptions.of(mode, **options).attribute()
    logits = np.random.default_rng(tokens).normal(size=(1, tokens, e)).astype(np.float32)
    folded = usmoe.compile(IR.format(T=tokens, E=e, ROUTER=router), target="cpu", entry="f")
    dynamic = usmoe.compile(IR.format(T="?", E=e, ROUTER=router), target="cpu", entry="f")
    (static_mask,), (dynamic_mask,) = folded([logits]), dynamic([logits])
    np.testing.assert_array_equal(static_mask, dynamic_mask)
    budget = cuda.RouterOptions.of(mode, **options).set_budget(tokens, e)
    selected = static_mask.sum() if mode == "unified" else static_mask[0, :, 0].sum()
    assert selected == budget
