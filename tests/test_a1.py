"""Architecture A1 (toolkit/a1.py): the layout, the compiled loss against the slow NumPy
reference, a hand-set parity solution on strings of 500-600 bits, the cell registry, and the
refusal of gradient methods."""

import numpy as np
import pytest
import reference as ref

from toolkit import tasks as tt
from toolkit.a1 import A1, n_params_of
from toolkit.nets import CELLS, make_net
from toolkit.train import Budget, run


def _parity_solution(K=20.0):
    """AND(bit, state) in the hidden unit; the output is OR minus AND = XOR (module doc)."""
    #               W_hx     W_hh  w_ho  b_h  w_ox     w_oh  w_oo  b_o
    return np.array([0.5 * K, 0.0, K, -K, 0.5 * K, -K, K, -K])


def test_a1_has_eight_weights_and_registers_as_cell():
    net = make_net(1, 1, "sigmoid", {"cell": "a1", "n_hidden": 1})
    assert isinstance(net, A1) and CELLS["a1"] is A1
    assert net.n_params == 8 == n_params_of(1, 1)
    p = net.unpack(np.arange(8.0))
    assert [float(np.sum(v)) for v in p.values()] == list(np.arange(8.0))
    assert n_params_of(2, 3) == 3 * 2 + 9 + 6 + 2 + 3 + 2


@pytest.mark.parametrize("I, H", [(1, 1), (2, 3)])
@pytest.mark.parametrize("hidden, output", [("tanh", "sigmoid"), ("sigmoid", "linear")])
def test_a1_loss_and_forward_match_reference(I, H, hidden, output):
    rng = np.random.default_rng(7)
    net = A1(I, H, 1, hidden=hidden, output=output)
    B, T, P = 3, 9, 4
    x = rng.normal(size=(B, T, I))
    y = rng.uniform(size=(B, T, 1))
    mask = (rng.uniform(size=(B, T)) < 0.6) * rng.uniform(0.5, 2.0, size=(B, T))
    thetas = rng.normal(0.0, 1.0, size=(P, net.n_params))
    want = [ref.a1_loss(th, x, y, mask, I, H, hidden, output) for th in thetas]
    got = net.population_loss(thetas, x, y, mask)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert net.loss(thetas[1], x, y, mask) == got[1]
    h, yhat = net.forward(thetas[2], x)
    h_ref, o_ref = ref.a1_forward(thetas[2], x, I, H, hidden, output)
    np.testing.assert_allclose(h, h_ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(yhat[:, :, 0], o_ref, rtol=1e-13, atol=1e-14)


def test_a1_large_weights_and_nonfinite():
    net = A1()
    x = np.ones((2, 5, 1))
    y = np.zeros((2, 5, 1))
    L = net.population_loss(np.array([np.full(8, 100.0), np.full(8, -100.0)]), x, y)
    assert np.isfinite(L).all()  # BCE from the net input: no log(0) at saturation
    bad = np.full((1, 8), np.nan)
    assert net.population_loss(bad, x, y, check=False)[0] == np.inf


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_set_a1_computes_parity_of_500_to_600_bits(seed):
    net = A1()
    theta = _parity_solution()
    rng = np.random.default_rng(seed)
    for _ in range(5):
        n = int(rng.integers(500, 601))
        bits = rng.integers(0, 2, size=n)
        _, yhat = net.forward(theta, (2.0 * bits - 1.0)[None, :, None])
        prefix_parity = np.cumsum(bits) % 2  # the output tracks the parity at every step
        np.testing.assert_array_less(np.abs(yhat[0, :, 0] - prefix_parity), 1e-3)
    task = tt.get("parity", T=500, T_max=600, tol=0.1, n_train=100, n_test=100)
    assert task.solved(net, theta)
    assert not task.solved(net, np.zeros(8))


def test_a1_is_guessed_not_trained():
    task = tt.get("parity", T=5, T_max=6, tol=0.1, n_train=20, n_test=20)
    net = make_net(task.n_in, task.n_out, task.output, {"cell": "a1"})
    data = task.generate(0)
    with pytest.raises(ValueError, match="needs gradients.*evolutionary"):
        run("bptt_adam", net, task, data, seed=0, budget=Budget(evals=10))
    with pytest.raises(NotImplementedError, match="no gradient"):
        net.loss_and_grad(np.zeros(8), data.x, data.y)
    tr = run("random", net, task, data, seed=3, budget=Budget(evals=20000), batch=1)
    assert tr.outcome == "solved"  # short strings: a few thousand guesses at most


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"n_out": 2}, "one output unit"),
        ({"output": "softmax"}, "output"),
        ({"hidden": "relu"}, "hidden"),
    ],
)
def test_a1_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        A1(**kwargs)
    with pytest.raises(ValueError, match="h0"):
        A1().check_data(np.zeros((1, 2, 1)), h0=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="window: not a setting of an A1"):
        make_net(1, 1, "sigmoid", {"cell": "a1", "window": 2})
