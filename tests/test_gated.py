"""The gated cells (toolkit/gated.py): LSTM and GRU against the slow NumPy reference, central
finite differences (full and truncated k), torch.nn.LSTM / nn.GRU autograd (skipped without
torch), population_loss == loss bit for bit, the state API and bad input."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import reference as ref

import toolkit
from toolkit import GRU, LSTM
from toolkit.nets import CELLS, grad_cost_ratio, make_net
from toolkit.train import METHODS, run

CELLS_ = {"lstm": LSTM, "gru": GRU}
OUTPUTS = ["linear", "sigmoid", "softmax"]


def make_problem(cell, I, H, O, B, T, output, seed, mask_kind="random", h0=False):
    rng = np.random.default_rng(seed)
    net = CELLS_[cell](I, H, O, output=output)
    theta = net.init(rng, scale=0.8)
    x = rng.normal(size=(B, T, I))
    if output == "linear":
        y = rng.normal(size=(B, T, O))
    elif output == "sigmoid":
        y = rng.uniform(size=(B, T, O))
    else:
        y = rng.dirichlet(np.ones(O), size=(B, T))
    if mask_kind == "random":
        mask = rng.uniform(0, 2, size=(B, T)) * (rng.uniform(size=(B, T)) < 0.7)
    elif mask_kind == "last":
        mask = np.zeros((B, T))
        mask[:, -1] = 1.0
    else:
        mask = None
    s0 = rng.normal(size=(B, net.n_state)) * 0.5 if h0 else None
    return net, theta, x, y, mask, s0


def _rel_err(g, g_fd):
    return np.abs(g - g_fd) / np.maximum(np.abs(g) + np.abs(g_fd), 1e-7)


CASES = [(1, 1, 1, 1, 1), (2, 3, 2, 2, 5), (3, 8, 1, 3, 12), (1, 5, 3, 1, 9)]


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forward_and_loss_match_reference(cell, case, output):
    I, H, O, B, T = case
    for mask_kind, h0 in (("random", False), ("none", True)):
        net, theta, x, y, mask, s0 = make_problem(cell, I, H, O, B, T, output, 1, mask_kind, h0)
        h, yhat = net.forward(theta, x, h0=s0)
        h_r, yhat_r, S_r = ref.gated_forward(cell, theta, x, (I, H, O), output, s0)
        np.testing.assert_allclose(h, h_r, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(yhat, yhat_r, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(net.states(theta, x, h0=s0), S_r, rtol=1e-12, atol=1e-13)
        L = net.loss(theta, x, y, mask, h0=s0)
        L_r = ref.gated_loss(cell, theta, x, y, mask, (I, H, O), output, s0)
        assert L == pytest.approx(L_r, rel=1e-11, abs=1e-12)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_full_gradient_central_differences(cell, output):
    I, H, O, B, T = 2, 4, 3, 2, 7
    net, theta, x, y, mask, s0 = make_problem(cell, I, H, O, B, T, output, 6, h0=True)
    _, g = net.loss_and_grad(theta, x, y, mask, h0=s0)
    g_fd = ref.central_diff4(lambda th: net.loss(th, x, y, mask, h0=s0), theta)
    err = _rel_err(g, g_fd)
    assert err.max() < 1e-7, err.max()
    assert err.mean() < 1e-9, err.mean()


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_truncated_gradient_central_differences_of_truncated_objective(cell, output, k):
    I, H, O, B, T = 2, 4, 2, 2, 8
    net, theta, x, y, mask, s0 = make_problem(cell, I, H, O, B, T, output, 7, h0=True)
    _, g = net.loss_and_grad(theta, x, y, mask, k=k, h0=s0)
    g_fd = ref.central_diff4(
        lambda th: ref.gated_truncated_objective(
            cell, th, theta, x, y, mask, k, (I, H, O), output, s0
        ),
        theta,
    )
    err = _rel_err(g, g_fd)
    assert err.max() < 1e-7, err.max()
    assert err.mean() < 1e-9, err.mean()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_k_at_least_T_is_full_and_shorter_k_differs(cell):
    I, H, O, B, T = 1, 6, 1, 2, 9
    net, theta, x, y, mask, _ = make_problem(cell, I, H, O, B, T, "linear", 8)
    L, g_full = net.loss_and_grad(theta, x, y, mask)
    for k in (T, T + 5):
        L_k, g_k = net.loss_and_grad(theta, x, y, mask, k=k)
        assert L_k == L
        np.testing.assert_array_equal(g_k, g_full)
    _, g_short = net.loss_and_grad(theta, x, y, mask, k=T - 1)
    assert np.abs(g_short - g_full).max() > 1e-8
    # the readout's gradient does not depend on k
    p_full, p_1 = net.unpack(g_full), net.unpack(net.loss_and_grad(theta, x, y, mask, k=1)[1])
    np.testing.assert_allclose(p_1["W_hy"], p_full["W_hy"], rtol=1e-13)
    np.testing.assert_allclose(p_1["b_y"], p_full["b_y"], rtol=1e-13)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_population_loss_is_loss_bit_for_bit(cell):
    net, theta, x, y, mask, s0 = make_problem(cell, 2, 5, 2, 3, 10, "softmax", 9, h0=True)
    rng = np.random.default_rng(10)
    thetas = rng.normal(size=(7, net.n_params))
    Ls = net.population_loss(thetas, x, y, mask, h0=s0)
    np.testing.assert_array_equal(Ls, [net.loss(t, x, y, mask, h0=s0) for t in thetas])
    for k in (None, 3):
        assert net.loss_and_grad(thetas[2], x, y, mask, k=k, h0=s0)[0] == Ls[2]
    thetas[3, 0] = np.nan
    thetas[4] *= 1e300  # overflowing
    Ls = net.population_loss(thetas, x, y, mask, h0=s0)
    assert Ls[3] == np.inf and np.isfinite(Ls[[0, 1, 2, 5, 6]]).all()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_carries_over_and_step_is_one_step(cell):
    """The state after step t, passed back as h0, continues the sequence exactly (what the
    BPTT(k1, k2) and online trainers rely on), and step() is one step of it."""
    net, theta, x, y, _, s0 = make_problem(cell, 2, 4, 1, 3, 8, "linear", 11, h0=True)
    S = net.states(theta, x, h0=s0)
    assert S.shape == (3, 8, net.n_state)
    S2 = net.states(theta, x[:, 5:], h0=S[:, 4])
    np.testing.assert_array_equal(S2, S[:, 5:])
    h, _ = net.forward(theta, x, h0=s0)
    np.testing.assert_array_equal(h, S[:, :, : net.n_hidden])
    np.testing.assert_array_equal(net.step(theta, S[:, 2], x[:, 3]), S[:, 3])
    np.testing.assert_array_equal(net.step(theta, s0, x[:, 0], check=False), S[:, 0])


def test_layout_and_parameter_counts():
    I, H, O = 3, 4, 2
    lstm, gru = LSTM(I, H, O), GRU(I, H, O)
    assert lstm.n_params == 4 * H * (I + H + 1) + O * (H + 1) == 138
    assert gru.n_params == 3 * H * (I + H + 1) + H + O * (H + 1) == 110
    assert lstm.n_state == 2 * H and gru.n_state == H
    for net in (lstm, gru):
        theta = np.arange(net.n_params, dtype=float)
        p = net.unpack(theta)
        r = ref.gated_unpack(net.cell, theta, I, H, O)
        assert list(p) == list(r)
        for name in p:
            np.testing.assert_array_equal(p[name], r[name])
        np.testing.assert_array_equal(net.pack(p), theta)
        p["b_h"][0] = -1.0  # views; b_h follows W_xh (n_g H, I) and W_hh (n_g H, H)
        assert theta[(4 if net.cell == "lstm" else 3) * H * (I + H)] == -1.0
    assert list(gru.unpack(np.zeros(110))) == ["W_xh", "W_hh", "b_h", "b_hn", "W_hy", "b_y"]


def test_cells_register_and_build_from_config():
    assert CELLS["lstm"] is LSTM and CELLS["gru"] is GRU
    net = make_net(2, 1, "sigmoid", {"cell": "lstm", "n_hidden": 3})
    assert net == LSTM(2, 3, 1, output="sigmoid") and net.loss_kind == "bce"
    assert make_net(1, 2, "softmax", {"cell": "gru", "n_hidden": 2}) == GRU(1, 2, 2, "softmax")
    with pytest.raises(ValueError, match="hidden.*not a setting of an LSTM"):
        make_net(1, 1, "linear", {"cell": "lstm", "n_hidden": 2, "hidden": "relu"})
    assert LSTM(1, 2, 1) != GRU(1, 2, 1)


def test_init_reproducible_and_scaled():
    net = GRU(2, 9, 1)
    a, b = net.init(3), net.init(np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() <= 1 / 3 and a.shape == (net.n_params,)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda n, t, x, y: n.loss(t, x[0], y), ValueError, ["x", "3-D", "(4, 1)"]),
        (lambda n, t, x, y: n.loss(t, x, y[:, :3]), ValueError, ["y", "(2, 4, 1)", "(2, 3, 1)"]),
        (lambda n, t, x, y: n.loss(t[:-1], x, y), ValueError, ["theta", "expected shape"]),
        (lambda n, t, x, y: n.loss(t, x, y, mask=-np.ones((2, 4))), ValueError, ["mask", "negat"]),
        (lambda n, t, x, y: n.loss(t, x * np.nan, y), ValueError, ["x", "non-finite"]),
        (lambda n, t, x, y: n.loss(t * np.nan, x, y), ValueError, ["theta", "non-finite"]),
        (lambda n, t, x, y: n.loss_and_grad(t, x, y, k=0), ValueError, ["k", ">= 1", "0"]),
        (lambda n, t, x, y: n.loss_and_grad(t, x, y, k=1.5), TypeError, ["k"]),
        (lambda n, t, x, y: n.loss(t, "abc", y), TypeError, ["x"]),
        (lambda n, t, x, y: n.loss(t, x, y, h0=np.zeros((2, 1))), ValueError, ["h0", "(2, "]),
        (lambda n, t, x, y: n.population_loss(t, x, y), ValueError, ["thetas", "2-D"]),
        (lambda n, t, x, y: n.init("seed"), TypeError, ["rng"]),
        (lambda n, t, x, y: n.pack({"W_xh": 1}), ValueError, ["missing"]),
    ],
)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bad_input_names_the_argument(cell, call, exc, words):
    net, theta, x, y, _, _ = make_problem(cell, 1, 3, 1, 2, 4, "linear", 13)
    with pytest.raises(exc) as info:
        call(net, theta, x, y)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_bad_constructor_arguments(cls):
    with pytest.raises(ValueError, match="n_hidden"):
        cls(1, 0, 1)
    with pytest.raises(ValueError, match="output.*poisson"):
        cls(1, 2, 1, output="poisson")
    with pytest.raises(TypeError, match="n_in"):
        cls(1.5, 2, 1)


# -- against torch autograd ------------------------------------------------------------------
def _torch_loss(torch, z, y, mask, output):
    F = torch.nn.functional
    if output == "linear":
        l = 0.5 * ((z - y) ** 2).sum(-1)
    elif output == "sigmoid":
        l = F.binary_cross_entropy_with_logits(z, y, reduction="none").sum(-1)
    else:
        l = -(y * F.log_softmax(z, dim=-1)).sum(-1)
    return (mask * l).sum()


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_matches_torch_autograd(cell, output):
    """Loss and full gradient against torch.nn.LSTM / nn.GRU with the same weights (torch's
    two biases: b_ih = our b_h, b_hh = 0, except the GRU's b_hh[2H:] = our b_hn), float64."""
    torch = pytest.importorskip("torch")
    I, H, O, B, T = 3, 5, 2, 4, 11
    net, theta, x, y, mask, s0 = make_problem(cell, I, H, O, B, T, output, 21, h0=True)
    L, g = net.loss_and_grad(theta, x, y, mask, h0=s0)
    p = net.unpack(theta)
    t64 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    Mod = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    rnn = Mod(I, H, batch_first=True, dtype=torch.float64)
    lin = torch.nn.Linear(H, O, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(t64(p["W_xh"]))
        rnn.weight_hh_l0.copy_(t64(p["W_hh"]))
        rnn.bias_ih_l0.copy_(t64(p["b_h"]))
        b_hh = np.zeros(rnn.bias_hh_l0.shape[0])
        if cell == "gru":
            b_hh[2 * H :] = p["b_hn"]
        rnn.bias_hh_l0.copy_(t64(b_hh))
        lin.weight.copy_(t64(p["W_hy"]))
        lin.bias.copy_(t64(p["b_y"]))
    h0 = t64(s0[:, :H][None])
    state = (h0, t64(s0[:, H:][None])) if cell == "lstm" else h0
    hs, _ = rnn(t64(x), state)
    Lt = _torch_loss(torch, lin(hs), t64(y), t64(mask), output)
    Lt.backward()
    want = {
        "W_xh": rnn.weight_ih_l0.grad,
        "W_hh": rnn.weight_hh_l0.grad,
        "b_h": rnn.bias_ih_l0.grad,
        "W_hy": lin.weight.grad,
        "b_y": lin.bias.grad,
    }
    if cell == "gru":
        want["b_hn"] = rnn.bias_hh_l0.grad[2 * H :]
    g_t = net.pack({k: v.numpy() for k, v in want.items()})
    assert L == pytest.approx(Lt.item(), rel=1e-10)
    scale = np.abs(g_t).max()
    np.testing.assert_allclose(g, g_t, rtol=1e-10, atol=1e-10 * scale)


# -- in the trainers ---------------------------------------------------------------------------
def _echo(B=3, T=9, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(B, T, 1))
    y = np.roll(x, 1, axis=1)
    mask = np.ones((B, T))
    mask[:, 0] = 0.0
    return x, y, mask


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_k1k2_carries_the_whole_state(cell):
    """BPTT(k1=2, k2=3) by hand through the public API, one epoch of SGD on the summed loss
    (the LSTM's state is [h, c]: losing c between blocks would change the updates). The
    trainer's 6th evaluation (the next epoch's first) spends the budget before its update."""
    net = CELLS_[cell](1, 3, 1)
    x, y, mask = _echo(B=2)
    lr = 0.1
    th = net.init(np.random.default_rng(np.random.SeedSequence(4)))  # what run(seed=4) draws
    hist = [np.zeros((2, net.n_state))]  # state before step 0, 1, ...
    for t0 in range(0, 9, 2):
        t1 = min(t0 + 2, 9)
        hist += list(net.states(th, x[:, t0:t1], h0=hist[t0]).transpose(1, 0, 2))
        s = max(0, t1 - 3)
        mw = np.zeros((2, t1 - s))
        mw[:, t0 - s :] = mask[:, t0:t1]
        _, g = net.loss_and_grad(th, x[:, s:t1], y[:, s:t1], mw, h0=hist[s])
        th = th - lr * g
    tr = run("bptt_k1k2", net, None, (x, y, mask), seed=4, budget={"evals": 6}, k1=2, k2=3,
             lr=lr, reduction="sum")  # fmt: skip
    np.testing.assert_allclose(tr.final_theta, th, rtol=0, atol=1e-13)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_every_method_trains_a_gated_cell(cell):
    """Each registered method runs on the cell to its budget without an error, and the
    gradient methods are charged the cell's calibrated gradient cost."""
    net = CELLS_[cell](1, 3, 1)
    x, y, mask = _echo()
    data = SimpleNamespace(x=x, y=y, mask=mask)
    ratio = grad_cost_ratio(net)
    table = json.loads((Path(toolkit.__file__).parent / "grad_cost.json").read_text())
    r2, r4 = table["ratio_by_cell"][cell]["2"], table["ratio_by_cell"][cell]["4"]
    assert ratio == pytest.approx(r2 + (r4 - r2) * np.log(3 / 2) / np.log(2), rel=1e-12)
    for name, m in METHODS.items():
        tr = run(name, net, None, data, seed=1, budget={"fwd_equiv": 3000})
        assert tr.outcome in ("budget", "target", "solved"), (name, tr.outcome, tr.message)
        assert np.isfinite(tr.best_loss)
        if m.family == "gradient":
            s = tr.summary()
            assert s["fwd_equiv"] == pytest.approx(s["fwd_steps"] + ratio * s["grad_steps"])
    tr = run("bptt_online", net, None, data, seed=1, budget={"evals": 3}, average="copies")
    assert tr.outcome == "error" and "Elman nets only" in tr.message


# -- in an experiment: config, sweep, store, report prose ---------------------------------------
SMOKE = """
name = "gated_smoke"
seed = 5
replicates = 2
[task]
name = "latch"
params = {{ T = 5 }}
[net]
cell = "{cell}"
n_hidden = 3
[budget]
fwd_equiv = 2e4
[methods.bptt_adam]
lr = 0.03
[methods.cmaes]
sigma = 0.3
"""


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_smoke_sweep(tmp_path, cell):
    """``[net] cell`` through the whole path: the config, a sweep of BPTT (Adam) and CMA-ES,
    the stored cell column and parameter count, the report's description of the network."""
    from toolkit import analysis, config, store, sweep, tasks

    cfg = tmp_path / "gated_smoke.toml"
    cfg.write_text(SMOKE.format(cell=cell))
    out = tmp_path / "res"
    res = sweep.run_sweep(cfg, out=out, jobs=1, progress=False, echo=lambda *a: None)
    assert res.ok
    runs = store.load_runs(out)
    assert len(runs) == 4 and set(runs["method"]) == {"bptt_adam", "cmaes"}
    assert (runs["cell"] == cell).all() and runs["hidden"].isna().all()
    task = tasks.get("latch", T=5)
    assert (runs["n_params"] == CELLS_[cell](task.n_in, 3, task.n_out).n_params).all()
    assert set(runs["outcome"]) <= {"budget", "solved", "target"}, runs["message"].tolist()
    assert (runs["fwd_equiv"] >= 2e4).all()
    assert analysis.describe_config(runs).startswith(f"{CELLS_[cell].__name__} H=3")
    # the run key holds the cell, so an Elman sweep of the same file is a different set of runs
    elman = tmp_path / "elman.toml"
    elman.write_text(SMOKE.format(cell="elman"))
    ids = {r["run_id"] for r in config.load_config(elman).runs}
    assert ids.isdisjoint(set(runs["run_id"]))
    # the report names the cell where it is in the results (and Elman-only prose otherwise)
    from toolkit import report

    text = report.render_report(tmp_path)
    name = CELLS_[cell].__name__
    assert f"for Elman and {name} networks: results" in text
    assert f"| res | {cell} | 3 | – |" in text  # the results directory names the row
    assert f"The {name} (cell = {cell};" in text
