"""dispatch, expert_ffn and combine take what moe.plan writes. Other ids or
offsets are caught by the compiled CPU code's run-time checks (the caller
gets a ValueError), never read out of bounds or summed in an order the GPU
lowering would not reproduce."""

import numpy as np
import pytest

import usmoe

COMBINE = """
func.func @f(%out: tensor<?x4xf32>, %ids: tensor<?xi32>, %w: tensor<?xf32>,
             %init: tensor<?x4xf32>, %off: tensor<3xi32>) -> tensor<?x4xf32> {
  %y = moe.combine %out, %ids, %w into %init offsets %off
      : tensor<?x4xf32>, tensor<?xi32>, tensor<?xf32> into tensor<?x4xf32>, tensor<3xi32>
  return %y : tensor<?x4xf32>
}
"""

DISPATCH = """
func.func @f(%h: tensor<?x4xf32>, %ids: tensor<?xi32>) -> tensor<?x4xf32> {
  %x = moe.dispatch %h, %ids : tensor<?x4xf32>, tensor<?xi32>
  return %x : tensor<?x4xf32>
}
"""

FFN = """
func.func @f(%x: tensor<?x4xf32>, %off: tensor<3xi32>, %w1: tensor<2x4x8xf32>,
             %w3: tensor<2x4x8xf32>, %w2: tensor<2x8x4xf32>) -> tensor<?x4xf32> {
  %y = moe.expert_ffn %x, %off, %w1, %w3, %w2 : tensor<?x4xf32>, tensor<3xi32>,
      tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x8x4xf32>
  return %y : tensor<?x4xf32>
}
"""


def combine(ids, offsets, tokens=3):
    f = usmoe.compile(COMBINE, target="cpu", entry="f")
    m = len(ids)
    return f([np.ones((m, 4), np.float32), np.array(ids, np.int32), np.ones(m, np.float32),
              np.zeros((tokens, 4), np.float32), np.array(offsets, np.int32)])


@pytest.mark.parametrize("ids, offsets", [([0, 2, 1], [0, 2, 3]), ([0, 1, 2], [0, 3, 3]),
                                          ([], [0, 0, 0])])
def test_a_plan_combines(ids, offsets):
    (y,) = combine(ids, offsets)
    np.testing.assert_array_equal(y[:, 0], np.bincount(ids, minlength=3))


@pytest.mark.parametrize("ids, offsets, message", [
    ([2, 0, 1], [0, 2, 3], "token ids must ascend inside each expert's rows"),
    ([0, 0, 1], [0, 2, 3], "token ids must ascend inside each expert's rows"),
    ([0, 3, 1], [0, 2, 3], r"a token id is outside \[0, tokens\)"),
    ([0, -1, 1], [0, 2, 3], r"a token id is outside \[0, tokens\)"),
    ([0, 2, 1], [0, 2, 4], "expert_offsets must go from 0 to the number of rows"),
    ([0, 2, 1], [1, 2, 3], "expert_offsets must go from 0 to the number of rows"),
])
def test_combine_checks_the_plan_contract(ids, offsets, message):
    with pytest.raises(ValueError, match=message):
        combine(ids, offsets)


def test_dispatch_checks_ids():
    f = usmoe.compile(DISPATCH, target="cpu", entry="f")
    with pytest.raises(ValueError, match=r"dispatch: a token id is outside \[0, tokens\)"):
        f([np.ones((2, 4), np.float32), np.array([0, 2], np.int32)])


@pytest.mark.parametrize("offsets", [[0, 3, 2], [0, 1, 5], [-1, 1, 2]])
def test_expert_ffn_checks_offsets(offsets):
    f = usmoe.compile(FFN, target="cpu", entry="f")
    rng = np.random.default_rng(0)
    args = [rng.normal(size=(2, 4)).astype(np.float32), np.array(offsets, np.int32),
            rng.normal(size=(2, 4, 8)).astype(np.float32),
            rng.normal(size=(2, 4, 8)).astype(np.float32),
            rng.normal(size=(2, 8, 4)).astype(np.float32)]
    with pytest.raises(ValueError, match="expert_ffn: expert_offsets must go from 0"):
        f(args)
