"""usmoe-expand-exp through the CPU pipeline: the f32 exp every backend's
routers use (softmax, sigmoid) against exp in long double, on random inputs
over the whole f32 range of exp and on the special values: within 1.06 ulp
(the bound measured over every f32 input), the correctly rounded f32 for
about 9 in 10 inputs, IEEE at the edges."""

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


def long_double_exp(x):
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("needs an extended-precision long double")
    with np.errstate(over="ignore"):
        return np.exp(x.astype(np.longdouble))


def ulp_errors(got, exact):
    """|got - exp| in units of the last place of the f32 nearest exp (the
    smallest subnormal below the normal range)."""
    nearest = exact.astype(np.float32)
    ulp = (np.nextafter(nearest, np.float32(np.inf)).astype(np.longdouble)
           - nearest.astype(np.longdouble))
    ulp = np.maximum(ulp, np.longdouble(2.0) ** -149)
    return np.abs(got.astype(np.longdouble) - exact) / ulp


def test_the_expanded_exp_is_within_its_bound(compiled_exp):
    rng = np.random.default_rng(7)
    x = np.concatenate([
        rng.uniform(-104.0, 89.0, 1_000_000),  # the whole finite range
        rng.uniform(-20.0, 0.0, 1_000_000),  # softmax: x - max <= 0
        rng.normal(0.0, 3.0, 500_000),
        rng.uniform(-103.97, -87.3, 100_000),  # subnormal results
    ]).astype(np.float32)
    finite = x < np.float32(88.72)
    got = compiled_exp(x)[finite]
    exact = long_double_exp(x[finite])
    errors = ulp_errors(got, exact)
    worst = np.argmax(errors)
    assert errors[worst] <= 1.06, (x[finite][worst], got[worst], exact[worst])
    rounded = got.view(np.int32) == exact.astype(np.float32).view(np.int32)
    assert rounded.mean() > 0.88, rounded.mean()  # 0.91 measured


def test_special_values_follow_ieee(compiled_exp):
    f32 = np.float32
    largest = np.nextafter(f32(88.72284), f32(0))  # exp is still finite
    tiny = f32(-103.97)  # exp is the smallest subnormals' range
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 89.0,
                  largest, -87.3, tiny, -104.0, -200.0, 200.0, 1e30, -1e30,
                  88.8, -103.98],
                 dtype=f32)
    got = compiled_exp(x)
    assert np.isnan(got[4])
    finite = ~np.isnan(x)
    exact = long_double_exp(np.nan_to_num(x, nan=0.0))[finite]
    with np.errstate(over="ignore"):
        overflow = np.isinf(exact.astype(f32))
    assert np.all(np.isinf(got[finite][overflow]))
    assert np.all(ulp_errors(got[finite][~overflow], exact[~overflow]) <= 1.06)
    assert got[0] == 1.0 and got[1] == 1.0 and got[2] == np.inf and got[3] == 0.0
    assert got[5] == 1.0 and got[6] == 1.0
    assert got[7] == np.inf and np.isfinite(got[8]) and 0.0 < got[10] < np.finfo(f32).tiny
    assert got[11] == 0.0 and got[12] == 0.0 and got[13] == np.inf
    assert got[14] == np.inf and got[15] == 0.0
