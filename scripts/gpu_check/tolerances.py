"""How close GPU results must be to the CPU path's: one definition for the
GPU run (run.py) and the emulator run (emulate.py) of gpu-check.

Selections (masks, CSR ids and offsets, top-k ids) must be identical. Floats
differ because the GPU sums in another order (butterfly reductions over a
row's experts, per-block partial sums): measured on the GPU emulator over the
packed cases, gates and weights differ by at most 2.2e-6 relative (E = 512,
about 18 ulp; it grows with log E), layer outputs by 2e-7 absolute for
values of order 1.
"""

import numpy as np

GATE_RTOL = 4e-6
LAYER_TOL = 1e-5


def rel_err(got, want, floor):
    """max |got - want| / max(|want|, floor); inf when the shapes differ."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    return float((np.abs(got - want) / np.maximum(np.abs(want), floor)).max(initial=0))


def gate_err(got, want):
    """Relative error of gates or weights, over the pairs the CPU selected."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    return rel_err(got[want != 0], want[want != 0], 1e-30)


def layer_err(got, want):
    """Error of layer outputs: relative above 1, absolute below."""
    return rel_err(got, want, 1.0)
