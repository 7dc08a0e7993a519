"""The gated kernels give exactly the bits they gave before they were reordered for speed:
every output (forward states, readout, loss, full and truncated gradients, population_loss) of
LSTM and GRU at several sizes, outputs, masks and initial states equals the fixture
tests/data/gated_bits.npz, written by tests/data/make_gated_bits.py with the scalar-loop
kernels (np.array_equal, no tolerance)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"
_spec = importlib.util.spec_from_file_location("make_gated_bits", DATA / "make_gated_bits.py")
mk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mk)

CASES = list(mk.cases())


@pytest.fixture(scope="module")
def fixture():
    with np.load(mk.OUT) as f:
        return {k: f[k] for k in f.files}


def test_fixture_covers_every_case(fixture):
    names = {k.split("/")[0] for k in fixture}
    assert names == {c[0] for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bits_equal_fixture(case, fixture):
    name, net, thetas, x, y, mask, h0 = case
    got = mk.compute(net, thetas, x, y, mask, h0)
    keys = {k.split("/", 1)[1] for k in fixture if k.startswith(name + "/")}
    assert keys == set(got)
    for key, v in got.items():
        want = fixture[f"{name}/{key}"]
        assert want.shape == np.shape(v), key
        assert np.array_equal(np.asarray(v), want), f"{name}/{key}: bits differ"
    # population_loss has the bits of loss() for each network, and loss_and_grad that loss
    assert np.array_equal(got["population"], got["loss"])
    assert got["gradL_k0"][0] == got["loss"][0]
