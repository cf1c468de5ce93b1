"""usmoe-expand-exp through the CPU pipeline: the f32 exp the CPU routers
use (softmax, sigmoid) against the correctly rounded f32 of exp (long double
exp rounded once), on random inputs over the whole f32 range of exp and on
the special values."""

import numpy as np
import pytest

import usmoe

# exp of each element, with math.exp as the routers' loops write it.
EXP_IR = """
func.func @exp(%x: tensor<?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %in = bufferization.to_buffer %x : tensor<?xf32> to memref<?xf32>
  %n = memref.dim %in, %c0 : memref<?xf32>
  %out = memref.alloc(%n) : memref<?xf32>
  scf.for %i = %c0 to %n step %c1 {
    %v = memref.load %in[%i] : memref<?xf32>
    %e = math.exp %v : f32
    memref.store %e, %out[%i] : memref<?xf32>
  }
  %r = bufferization.to_tensor %out restrict writable : memref<?xf32> to tensor<?xf32>
  return %r : tensor<?xf32>
}
"""


@pytest.fixture(scope="module")
def compiled_exp():
    function = usmoe.compile(EXP_IR, target="cpu", entry="exp")
    return lambda x: function([np.ascontiguousarray(x, dtype=np.float32)])[0]


def correctly_rounded_exp(x):
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("needs an extended-precision long double")
    with np.errstate(over="ignore"):
        return np.exp(x.astype(np.longdouble)).astype(np.float32)


def test_the_expanded_exp_is_the_correctly_rounded_f32(compiled_exp):
    rng = np.random.default_rng(7)
    x = np.concatenate([
        rng.uniform(-104.0, 89.0, 1_000_000),  # the whole finite range
        rng.uniform(-20.0, 0.0, 1_000_000),  # softmax: x - max <= 0
        rng.normal(0.0, 3.0, 500_000),
    ]).astype(np.float32)
    got = compiled_exp(x)
    want = correctly_rounded_exp(x)
    wrong = np.flatnonzero(got.view(np.int32) != want.view(np.int32))
    assert wrong.size == 0, (x[wrong[:5]], got[wrong[:5]], want[wrong[:5]])


def test_special_values_follow_ieee(compiled_exp):
    f32 = np.float32
    largest = np.nextafter(f32(88.72284), f32(0))  # exp is still finite
    tiny = f32(-103.97)  # exp is the smallest subnormals' range
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 89.0,
                  largest, -87.3, tiny, -104.0, -200.0, 200.0, 1e30, -1e30],
                 dtype=f32)
    got = compiled_exp(x)
    want = correctly_rounded_exp(np.nan_to_num(x, nan=0.0))
    assert np.isnan(got[4])
    finite = ~np.isnan(x)
    np.testing.assert_array_equal(got[finite].view(np.int32), want[finite].view(np.int32))
    assert got[0] == 1.0 and got[1] == 1.0 and got[2] == np.inf and got[3] == 0.0
    assert got[7] == np.inf and np.isfinite(got[8]) and 0.0 < got[10] < np.finfo(f32).tiny
