"""The CPU path's parallel loops (scf.parallel on LLVM's OpenMP runtime,
usmoe-to-cpu{openmp}): every router gives the same plan with 1, 2 and 3
threads and with the loops on the calling thread (USMOE_CPU_OPENMP=0)."""

import numpy as np
import pytest

import usmoe
from usmoe import cpu

pytestmark = pytest.mark.skipif(cpu.openmp_runtime() is None,
                                reason="usmoe was built without libomp")

ROUTERS = [dict(mode="token", k=2, renormalize=True), dict(mode="token", k=20),
           dict(mode="expert", capacity_factor=1.0, k=2),
           dict(mode="unified", k=1.5), dict(mode="unified", k=2.0, alpha=0.3,
                                             expert_score="softmax_tokens"),
           dict(mode="token", k=2, n_group=4, topk_group=2)]


def _plans(options, logits):
    plans = []
    try:
        for threads in (1, 2, 3):
            cpu.set_num_threads(threads)
            plans.append(usmoe.Router(**options)(logits))
    finally:
        cpu.set_num_threads(0)
    return plans


@pytest.mark.parametrize("options", ROUTERS)
def test_plans_do_not_depend_on_threads(options, monkeypatch):
    rng = np.random.default_rng(5)
    logits = rng.integers(-3, 4, size=(3, 70, 32)).astype(np.float32) * 0.5  # ties
    logits[0, :5] = rng.normal(size=(5, 32))
    plans = _plans(options, logits)
    monkeypatch.setenv(cpu.OPENMP_ENV, "0")
    plans.append(usmoe.Router(**options)(logits))
    for plan in plans[1:]:
        for field in ("gates", "mask", "expert_offsets", "token_ids", "weights"):
            np.testing.assert_array_equal(getattr(plan, field), getattr(plans[0], field))


def test_thread_count_is_checked_and_reported():
    with pytest.raises(ValueError, match="threads must be an int >= 0"):
        cpu.set_num_threads(-2)
    try:
        cpu.set_num_threads(1)
        assert cpu.get_num_threads() == 1
    finally:
        cpu.set_num_threads(0)



def test_any_omp_num_threads_syntax_is_left_to_libomp():
    """OMP_NUM_THREADS may be a list ("2,1", nested levels): libomp reads
    it, usmoe only restores libomp's own default."""
    import os
    import subprocess
    import sys
    code = ("import numpy as np, usmoe; from usmoe import cpu\n"
            "x = np.random.default_rng(0).normal(size=(1, 4096, 16)).astype(np.float32)\n"
            "a = usmoe.route(x, mode='token', k=2)\n"
            "cpu.set_num_threads(1); cpu.set_num_threads(0)\n"
            "b = usmoe.route(x, mode='token', k=2)\n"
            "assert (a.mask == b.mask).all()\n")
    # The child imports the same usmoe as this process (the CI's venv, the
    # build tree, or the sanitizer build's).
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(usmoe.__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="2,1",
               PYTHONPATH=os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


def test_workers_sleep_soon_after_a_call():
    """libomp's workers wait cpu.BLOCKTIME_MS (1 ms) for the next loop, not
    libomp's default 200 ms: in a 300 ms pause after a parallel call the
    process uses far less than the 200 ms a spinning worker would."""
    import os
    import subprocess
    import sys
    code = ("import time, numpy as np, usmoe; from usmoe import cpu\n"
            "x = np.random.default_rng(0).normal(size=(1, 4096, 64)).astype(np.float32)\n"
            "router = usmoe.Router(mode='token', k=2)\n"
            "router(x); time.sleep(0.3)\n"
            "spent = []\n"
            "for _ in range(3):\n"
            "    router(x); start = time.process_time(); time.sleep(0.3)\n"
            "    spent.append(time.process_time() - start)\n"
            "import os; assert os.environ['KMP_BLOCKTIME'] == cpu.BLOCKTIME_MS\n"
            "print(min(spent))\n")
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(usmoe.__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("KMP_BLOCKTIME", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) < 0.05, done.stdout


@pytest.mark.parametrize("gemm", ["loops", "onednn"])
def test_layers_do_not_depend_on_threads(gemm, monkeypatch):
    """Dispatch (rows) and combine (column chunks, every row in order) run
    in parallel above the work threshold (here 600 rows x 96 columns): the
    layer's output is the same with 1, 2, 3 threads and without OpenMP."""
    if gemm == "onednn" and cpu.runtime_path() is None:
        pytest.skip("usmoe was built without oneDNN")
    monkeypatch.setenv(cpu.ENV, gemm)
    rng = np.random.default_rng(6)
    w = [rng.normal(0, 0.1, shape).astype(np.float32)
         for shape in ((4, 96, 64), (4, 96, 64), (4, 64, 96))]
    hidden = rng.normal(size=(300, 96)).astype(np.float32)
    logits = rng.normal(size=(300, 4)).astype(np.float32)
    outputs = []
    try:
        for threads in (1, 2, 3):
            cpu.set_num_threads(threads)
            outputs.append(usmoe.MoeLayer(*w, mode="token", k=2)(hidden, logits))
    finally:
        cpu.set_num_threads(0)
    monkeypatch.setenv(cpu.OPENMP_ENV, "0")
    outputs.append(usmoe.MoeLayer(*w, mode="token", k=2)(hidden, logits))
    for y in outputs[1:]:
        np.testing.assert_array_equal(y, outputs[0])
