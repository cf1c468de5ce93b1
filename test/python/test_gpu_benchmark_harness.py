"""The GPU benchmarks (benchmarks/bench_gpu_router.py, bench_gpu_layer.py)
run only on a GPU machine; their harnesses (peers, timing, the tables) are
checked here on the CPU with tiny shapes, so that a GPU session does not
spend its minutes on a broken script."""

import os
import subprocess
import sys

import pytest

import usmoe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "bench_gpu_router.py")
LAYER_SCRIPT = os.path.join(ROOT, "benchmarks", "bench_gpu_layer.py")


def test_dry_run_prints_a_row_per_router_and_size():
    pytest.importorskip("torch")
    # The usmoe this test imports, wherever it comes from.
    package = os.path.dirname(os.path.dirname(os.path.abspath(usmoe.__file__)))
    run = subprocess.run([sys.executable, SCRIPT, "dry-run", "--no-compile"],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, USMOE_CACHE_DIR="", PYTHONPATH=package))
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and
            not line.startswith("| router")]
    # token k=2 and unified (token k=8 needs E >= 8: E = 8 is enough) at T = 1, 64.
    assert len(rows) == 3 * 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[4]) > 0  # usmoe's median
        assert float(cells[5]) > 0 and float(cells[7]) > 0  # the peers


def test_without_a_gpu_it_says_so():
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    run = subprocess.run([sys.executable, SCRIPT, "run", "/nonexistent"], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2 and "no PyTorch with a GPU" in run.stderr


def test_layer_dry_run_prints_the_layer_and_budget_tables():
    pytest.importorskip("torch")
    package = os.path.dirname(os.path.dirname(os.path.abspath(usmoe.__file__)))
    run = subprocess.run([sys.executable, LAYER_SCRIPT, "dry-run"],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, USMOE_CACHE_DIR="", PYTHONPATH=package))
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    layer = [l for l in lines if l.startswith("| tiny |")]
    budgets = [l for l in lines if l.startswith(("| token k=2 |", "| unified k="))]
    assert len(layer) == 1 and len(budgets) == 4
    cells = [c.strip() for c in layer[0].strip("|").split("|")]
    assert int(cells[3]) == 32  # 16 tokens x k = 2 rows
    assert float(cells[4]) > 0 and float(cells[6]) > 0  # usmoe and the peer
    rows = [int(l.strip("|").split("|")[1]) for l in budgets]
    assert rows == [32, 32, 24, 16]  # the budget's rows: k * T
