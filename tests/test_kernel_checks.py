"""The kernels' debug mode (BPTT_KERNEL_CHECKS=1, toolkit/kernels/simd.py): vector loads and
stores are bounds-checked, the results are the normal mode's bits, and the checked code is
cached apart from the normal code. Each mode runs in its own subprocess (the mode is read
once, at import); compile time dominates, so the shapes are few and small."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toolkit import Elman

_OUT_OF_BOUNDS = """
import numpy as np
from numba import njit
from toolkit.kernels import simd, tiles
from toolkit.kernels.simd import vhsum, vload, vsplat, vstore

print("checks", simd.CHECKS)


@njit
def load(a, i):
    return vhsum(vload(a, i))


@njit
def store(a, i):
    vstore(a, i, vsplat(1.0))


big = np.zeros(32)
a = big[4:16]  # 12 elements; every access below stays inside big
for name, f, i in [("load", load, 8), ("load", load, -1), ("store", store, 5)]:
    try:
        f(a, i)
        print(name, i, "no error")
    except IndexError as e:
        print(name, i, "IndexError:", e)


@njit
def product(v, m, OUT, bias):  # a 1 x 8 block with init from bias
    p, q = tiles.ptr(v), tiles.ptr(m)
    tiles.product(p, 0, 2, 1, q, 0, 2, p, 0, 2, 1, q, 0, 0, tiles.ptr(OUT), 0, 1, 8,
                  tiles.ptr(bias), 0, 1, -1)  # fmt: skip
    tiles.keep(v)
    tiles.keep(m)
    tiles.keep(OUT)
    tiles.keep(bias)


# a product whose output block (1 x 8) is 4 elements longer than OUT
try:
    product(np.ones(2), np.ones(16), big[:4], np.zeros(8))
    print("product no error")
except IndexError as e:
    print("product IndexError:", e)
"""


def _run(code, checks, *args):
    env = dict(os.environ, BPTT_KERNEL_CHECKS="1" if checks else "0")
    r = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_debug_mode_bounds_checks_vector_loads_and_stores():
    out = _run(_OUT_OF_BOUNDS, True)
    assert "checks True" in out
    assert "load 8 IndexError: vload: elements 8..15 of an array of length 12" in out
    assert "load -1 IndexError: vload: elements -1..6 of an array of length 12" in out
    assert "store 5 IndexError: vstore: elements 5..12 of an array of length 12" in out
    assert "product IndexError: vstore: elements 0..7 of an array of length 4" in out


def test_normal_mode_does_not_check():
    out = _run(_OUT_OF_BOUNDS, False)
    assert "checks False" in out
    assert out.count("no error") == 4, out


_SHAPES = [(1, 1), (7, 8), (8, 17), (9, 7), (17, 9), (8, 8), (1, 17), (17, 1)]  # (B, H)
_CASES = [  # hidden, output, k
    ("tanh", "linear", None),
    ("sigmoid", "sigmoid", 2),
    ("relu", "softmax", None),
    ("tanh", "softmax", 3),
    ("sigmoid", "linear", None),  # full BPTT's dmul with the sigmoid's derivative (see tiles.dmul)
]


def _results(tmp_file):
    """Elman's forward, loss, loss_and_grad and population_loss on shapes around the tile
    edges, every activation and output, full and truncated gradients; saved to tmp_file."""
    res = {}
    for n, (B, H) in enumerate(_SHAPES):
        hidden, output, k = _CASES[n % len(_CASES)]
        I, O, T = 2, 3, 5
        net = Elman(I, H, O, hidden=hidden, output=output)
        rng = np.random.default_rng(n)
        theta = net.init(rng, scale=0.8)
        x = rng.normal(size=(B, T, I))
        if output == "linear":
            y = rng.normal(size=(B, T, O))
        elif output == "sigmoid":
            y = (rng.random(size=(B, T, O)) < 0.5).astype(float)
        else:
            y = np.eye(O)[rng.integers(0, O, size=(B, T))]
        mask = (rng.random(size=(B, T)) < 0.8).astype(float)
        h, yhat = net.forward(theta, x)
        L, g = net.loss_and_grad(theta, x, y, mask, k=k)
        Ls = net.population_loss(rng.normal(scale=0.5, size=(3, net.n_params)), x, y, mask)
        for name, a in [("h", h), ("yhat", yhat), ("loss", net.loss(theta, x, y, mask)),
                        ("L", L), ("g", g), ("Ls", Ls)]:  # fmt: skip
            res[f"{n}_{name}"] = np.asarray(a)
    np.savez(tmp_file, **res)


_CHECKED_RESULTS = """
import os
import sys
sys.path.insert(0, sys.argv[1])
from numba.core import config
from toolkit import kernels
from toolkit.kernels import simd
from test_kernel_checks import _results
assert simd.CHECKS
# the checked code is cached apart from the normal code
assert os.path.basename(config.CACHE_DIR) == "bptt-kernel-checks", config.CACHE_DIR
assert kernels.loss_and_grad._cache._cache_path.startswith(config.CACHE_DIR)
_results(sys.argv[2])
print("checked ok")
"""


@pytest.mark.slow  # compiles every Elman kernel in checked mode: about 85 s with a cold cache
def test_debug_mode_gives_the_normal_bits(tmp_path):
    normal, checked = tmp_path / "normal.npz", tmp_path / "checked.npz"
    _results(normal)
    out = _run(_CHECKED_RESULTS, True, Path(__file__).parent, checked)
    assert "checked ok" in out
    a, b = np.load(normal), np.load(checked)
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        assert np.array_equal(a[key], b[key]), key


def test_only_the_tile_module_sees_vectors_and_pointers():
    """The package's rule (toolkit/kernels/__init__.py): no toolkit module but tiles.py
    imports simd or calls its vector intrinsics, and only the cells obtain (opaque) pointers
    and keep arrays, through tiles.ptr and tiles.keep."""
    import ast

    import toolkit

    root = Path(toolkit.__file__).parent
    vector = {"vload", "vstore", "vsplat", "vfma", "vfnma", "vmul", "vadd", "vsub", "vdiv"}
    vector |= {"vhsum", "vabs", "vcopysign", "vsel_lt", "vexp2neg_shifted", "_vtanh", "_vact"}
    cells = {"kernels/elman.py"}
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ("kernels/simd.py", "kernels/tiles.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("simd"):
                if [a.name for a in node.names] != ["target_has_avx512"]:
                    offenders.append(f"{rel}: imports {[a.name for a in node.names]} from simd")
            elif isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name in vector or (name in ("ptr", "keep") and rel not in cells):
                    offenders.append(f"{rel}:{node.lineno}: calls {name}")
    assert not offenders, offenders
