"""cu_seqlens: the API makes the batch structure explicit."""

import numpy as np
import pytest

import usmoe
from usmoe import reference


def test_packed_equals_separate_calls():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(21, 8)).astype(np.float32)
    cu = [0, 5, 5, 12, 21]
    packed = usmoe.route(logits, mode="unified", k=1.5, cu_seqlens=cu)
    for lo, hi in zip(cu[:-1], cu[1:]):
        if hi > lo:
            alone = usmoe.route(logits[lo:hi], mode="unified", k=1.5)
            np.testing.assert_array_equal(packed.mask[0, lo:hi], alone.mask[0])
            np.testing.assert_array_equal(packed.gates[0, lo:hi], alone.gates[0])


def test_packed_is_not_pooled():
    """Without offsets a 2-D input is one sequence: its budget is pooled,
    which differs from two sequences with their own budgets."""
    logits = np.array([[5.0, 0, 0, 0]] * 2 + [[0, 0, 0, 0.1]] * 2, np.float32)
    one = usmoe.route(logits, mode="expert", capacity=2)
    two = usmoe.route(logits, mode="expert", capacity=2, cu_seqlens=[0, 2, 4])
    assert one.mask[0, :, 0].tolist() == [True, True, False, False]
    assert two.mask[0, :, 0].tolist() == [True, True, True, True]


@pytest.mark.parametrize("cu, error, message", [
    ([0, 5], ValueError, "must start at 0, never decrease and end at the number of tokens"),
    ([1, 8], ValueError, "must start at 0"),
    ([0, 6, 4, 8], ValueError, "never decrease"),
    ([], ValueError, "a vector of S \\+ 1 offsets"),
    ([[0, 8]], ValueError, "a vector of S \\+ 1 offsets"),
    ([0.0, 8.0], TypeError, "must be integers"),
])
def test_bad_offsets(cu, error, message):
    with pytest.raises(error, match=message):
        usmoe.route(np.zeros((8, 4), np.float32), mode="unified", k=1, cu_seqlens=cu)


def test_rules_apply_per_sequence():
    """capacity <= T_i for the shortest non-empty sequence, in the rule's words."""
    with pytest.raises(ValueError, match=r"expects capacity <= 2 \(the number of tokens"):
        usmoe.route(np.zeros((8, 4), np.float32), mode="expert", capacity=3,
                    cu_seqlens=[0, 2, 2, 8])
    with pytest.raises(ValueError, match="one packed batch"):
        usmoe.route(np.zeros((2, 4, 4), np.float32), mode="unified", k=1,
                    cu_seqlens=[0, 8])


def test_compiled_code_checks_offsets_too():
    ir = """
func.func @f(%l: tensor<1x?x4xf32>, %cu: tensor<?xi32>) -> tensor<1x?x4xi1> {
  %g, %m = moe.route #moe.unified<k = 1.0> %l seqlens %cu : tensor<?xi32> : tensor<1x?x4xf32>
  return %m : tensor<1x?x4xi1>
}"""
    f = usmoe.compile(ir, target="cpu", entry="f")
    with pytest.raises(ValueError, match="moe: seqlens must not decrease"):
        f([np.zeros((1, 8, 4), np.float32), np.array([0, 6, 4, 8], np.int32)])


def test_layer_on_packed_sequences(gpu_path):
    rng = np.random.default_rng(4)
    e, d, f = 8, 16, 24
    w1, w3 = (rng.normal(0, 0.3, (e, d, f)).astype(np.float32) for _ in range(2))
    w2 = rng.normal(0, 0.3, (e, f, d)).astype(np.float32)
    cu = [0, 3, 3, 17, 30]
    logits = rng.normal(size=(30, e)).astype(np.float32)
    hidden = rng.normal(size=(30, d)).astype(np.float32)
    if gpu_path == "cuda":
        pytest.skip("cu_seqlens is not wired to a real GPU yet")
    layer = usmoe.MoeLayer(w1, w3, w2, mode="expert", capacity_factor=1.0, k=2,
                           device="cuda")
    y = layer(hidden, logits, cu_seqlens=cu)
    plan = reference.route(logits, mode="expert", capacity_factor=1.0, k=2, cu_seqlens=cu)
    np.testing.assert_allclose(y, reference.moe_layer(hidden, plan, w1, w3, w2),
                               rtol=1e-5, atol=1e-5)


def test_docs_example():
    """docs/Dialect.md, "Packed sequences": 7 + 0 + 10 + 12 + 1 pairs."""
    logits = np.random.default_rng(1).normal(size=(21, 64)).astype(np.float32)
    plan = usmoe.route(logits, mode="unified", k=1.5, cu_seqlens=[0, 5, 5, 12, 20, 21])
    assert plan.mask.sum() == 30
