"""Gradient trainers (toolkit.train.bptt): the online algorithm against its slow transcription,
averaging equivalence, BPTT(k1, k2), stopping and outcomes, determinism, bad input."""

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from reference_train import online_bptt

import toolkit
from toolkit.nets import Elman
from toolkit.train import METHODS, Budget, Trace, run
from toolkit.train.bptt import _Copies

GRADIENT = ("bptt_sgd", "bptt_momentum", "bptt_adam", "bptt_online", "bptt_k1k2")


def echo(seed=0, B=6, T=12, d=2):
    """Delayed echo: y[t] = x[t-d], the first d targets masked."""
    x = np.random.default_rng(seed).uniform(-1, 1, size=(B, T, 1))
    y = np.zeros_like(x)
    y[:, d:] = x[:, :-d]
    mask = np.ones((B, T))
    mask[:, :d] = 0.0
    return x, y, mask


def random_data(output, seed=0, B=2, T=7, I=2, O=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, I))
    if output == "linear":
        y = rng.normal(size=(B, T, O))
    elif output == "sigmoid":
        y = (rng.uniform(size=(B, T, O)) < 0.5) * 1.0
    else:
        y = np.eye(O)[rng.integers(0, O, size=(B, T))]
    mask = np.ones((B, T))
    mask[0, 4] = mask[1, 2] = 0.0  # skipped windows (the context still advances)
    return x, y, mask


def theta0(net, seed):
    return net.init(np.random.default_rng(np.random.SeedSequence(seed)))


def test_registered_with_defaults_that_validate():
    for name in GRADIENT:
        m = METHODS[name]
        assert m.family == "gradient"
        resolved = m.validate({})
        json.dumps(resolved)  # JSON-able, for the store
        assert m.validate(resolved) == resolved
        assert set(resolved) <= set(m.defaults)


# -- the online algorithm, step by step against the pseudo-code --------------------------


@pytest.mark.parametrize(
    "k, hidden, output, average",
    [
        (1, "tanh", "linear", "shared"),
        (2, "tanh", "linear", "shared"),
        (3, "tanh", "linear", "shared"),
        (5, "tanh", "linear", "shared"),
        (1, "tanh", "linear", "copies"),
        (3, "tanh", "linear", "copies"),
        (5, "tanh", "linear", "copies"),
        (3, "tanh", "linear", "sum"),
        (3, "sigmoid", "sigmoid", "copies"),
        (2, "relu", "softmax", "copies"),
        (4, "sigmoid", "softmax", "shared"),
    ],
)
def test_online_matches_the_pseudo_code_step_by_step(k, hidden, output, average):
    net = Elman(2, 3, 2, hidden=hidden, output=output)
    x, y, mask = random_data(output)
    lr, n_updates = 0.2, 13  # 2 sequences x (7-k+1) windows, minus masked: several epochs
    ref = online_bptt(
        net.unpack(theta0(net, 3)),
        x,
        y,
        mask,
        k,
        lr,
        n_updates,
        hidden,
        output,
        combine="sum" if average == "sum" else "average",
    )
    for n in (0, 1, 2, 5, 8, n_updates):
        tr = run(
            "bptt_online",
            net,
            None,
            (x, y, mask),
            seed=3,
            budget={"evals": n + 1},
            k=k,
            lr=lr,
            average=average,
            shuffle=False,
            reduction="sum",
        )
        assert tr.outcome == "budget" and tr.evals == n + 1
        got = net.unpack(tr.final_theta)  # the theta of the (n+1)-th evaluation: n updates
        for name, want in ref[n].items():
            np.testing.assert_allclose(got[name], want, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    "hidden, output", [("tanh", "linear"), ("sigmoid", "sigmoid"), ("relu", "softmax")]
)
def test_copies_gradients_add_up_to_the_core_gradient(hidden, output):
    net = Elman(2, 4, 3, hidden=hidden, output=output)
    x, y, _ = random_data(output, B=3, T=5, O=3)
    th = theta0(net, 1)
    x_ctx = np.random.default_rng(5).uniform(-0.5, 0.5, size=(3, 4))
    m_end = np.array([1.0, 0.5, 2.0])
    mw = np.zeros((3, 5))
    mw[:, -1] = m_end
    L, g = net.loss_and_grad(th, x, y, mw, h0=x_ctx)
    L2, G = _Copies(net, 5).grads(th, x_ctx, x, y[:, -1], m_end)
    assert math.isclose(L, L2, rel_tol=1e-12)
    f = {n: v.astype(int) for n, v in net.unpack(np.arange(net.n_params)).items()}
    f_idx = np.concatenate([f[n].ravel() for n in ("W_xh", "W_hh", "b_h")])
    g_idx = np.concatenate([f[n].ravel() for n in ("W_hy", "b_y")])
    np.testing.assert_allclose(G[:, f_idx].sum(axis=0), g[f_idx], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        G[:, g_idx], np.broadcast_to(g[g_idx], (5, g_idx.size)), rtol=1e-10, atol=1e-13
    )


@pytest.mark.parametrize(
    "hyper",
    [
        {"optimizer": "sgd"},
        {"optimizer": "sgd", "clip": 0.05, "weight_decay": 1e-3, "reduction": "mean"},
        {"optimizer": "momentum", "nesterov": True, "lr": 0.05},
    ],
)
def test_averaging_copies_equals_shared_weights_with_linear_optimizers(hyper):
    net = Elman(1, 5, 1)
    data = echo(B=4, T=10)
    kw = dict(seed=7, budget={"evals": 250}, k=4, batch_size=2, **{"lr": 0.1, **hyper})
    a = run("bptt_online", net, None, data, average="shared", **kw)
    b = run("bptt_online", net, None, data, average="copies", **kw)
    assert a.evals == b.evals == 250
    np.testing.assert_allclose(a.final_theta, b.final_theta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.points["loss"], b.points["loss"], rtol=1e-10)


def test_averaging_copies_is_not_shared_for_adam():
    # Adam is not linear in the gradient: averaging k separately-Adam-stepped copies differs
    net = Elman(1, 5, 1)
    kw = dict(seed=7, budget={"evals": 50}, k=4, optimizer="adam", lr=0.01)
    a = run("bptt_online", net, None, echo(), average="shared", **kw)
    b = run("bptt_online", net, None, echo(), average="copies", **kw)
    assert np.abs(a.final_theta - b.final_theta).max() > 1e-4


def test_online_cost_counting():
    net = Elman(1, 3, 1)
    x, y, mask = echo(B=3, T=8, d=2)
    k = 3  # windows end at t+k-1 = 2..7, all counted: 6 per sequence
    tr = run("bptt_online", net, None, (x, y, mask), seed=0, budget={"evals": 6 * 3 * 2}, k=k)
    assert tr.evals == 36 and tr.grad_steps == 36 * k
    assert tr.fwd_steps == 35  # the context advances after each update but the last
    assert tr.fwd_equiv == tr.fwd_steps + tr.grad_ratio * tr.grad_steps


# -- truncated, epochwise and BPTT(k1, k2) ---------------------------------------------------


@pytest.mark.parametrize("k2_factor", [1, 2])
def test_k1k2_with_k2_at_least_T_is_full_bptt(k2_factor):
    net = Elman(1, 4, 1)
    x, y, mask = echo(B=1, T=12)  # one sequence
    kw = dict(seed=2, budget={"evals": 30}, lr=0.05)
    full = run("bptt_sgd", net, None, (x, y, mask), **kw)
    k1k2 = run("bptt_k1k2", net, None, (x, y, mask), k1=12, k2=12 * k2_factor, **kw)
    np.testing.assert_allclose(k1k2.final_theta, full.final_theta, rtol=0, atol=1e-12)
    assert k1k2.grad_steps == full.grad_steps == 30 * 12
    assert k1k2.points["loss"] == full.points["loss"]


def test_k1k2_carries_the_state_and_backpropagates_k2_steps():
    # BPTT(k1=2, k2=3) by hand through the public API, one epoch (SGD, summed loss); the
    # first block's targets are masked: no update there, 4 updates in all
    net = Elman(1, 3, 1)
    x, y, mask = echo(B=2, T=9)
    lr = 0.1
    th = theta0(net, 4)
    h_hist = [np.zeros((2, 3))]  # state before step 0, 1, ...
    for t0 in range(0, 9, 2):
        t1 = min(t0 + 2, 9)
        h, _ = net.forward(th, x[:, t0:t1], h0=h_hist[t0])
        h_hist += list(h.transpose(1, 0, 2))
        s = max(0, t1 - 3)
        mw = np.zeros((2, t1 - s))
        mw[:, t0 - s :] = mask[:, t0:t1]
        _, g = net.loss_and_grad(th, x[:, s:t1], y[:, s:t1], mw, h0=h_hist[s])
        th = th - lr * g
    tr = run(
        "bptt_k1k2",
        net,
        None,
        (x, y, mask),
        seed=4,
        budget={"evals": 5},
        k1=2,
        k2=3,
        lr=lr,
        reduction="sum",
    )
    np.testing.assert_allclose(tr.final_theta, th, rtol=0, atol=1e-13)


@pytest.mark.trajectory
def test_minibatch_truncated_bptt_counts_and_trains():
    """Exact cost counts on every seed; training progress (loss below 20 % of the initial one
    after 300 updates) on at least 4 of 5 seeds, a margin for another CPU's rounding."""
    net = Elman(1, 6, 1)
    x, y, mask = echo(B=8, T=12)
    trained = 0
    for seed in range(5):
        L0 = net.loss(theta0(net, seed), x, y, mask)
        tr = run(
            "bptt_adam",
            net,
            None,
            (x, y, mask),
            seed=seed,
            budget={"evals": 300},
            k=3,
            batch_size=3,
            lr=0.02,
        )  # 3 minibatches per epoch: 3, 3, 2 sequences
        assert tr.outcome == "budget" and tr.evals == 300
        assert tr.grad_steps == 100 * (3 + 3 + 2) * 12
        trained += net.loss(tr.final_theta, x, y, mask) < 0.2 * L0
        df = tr.to_frame()
        assert 10 < len(df) < 300 and df["evals"].is_monotonic_increasing
    assert trained >= 4, f"{trained} of 5 seeds trained"


def test_full_batch_records_the_exact_training_loss():
    net = Elman(1, 4, 1)
    x, y, mask = echo()
    tr = run("bptt_momentum", net, None, (x, y, mask), seed=1, budget={"evals": 1})
    assert tr.points["loss"][-1] == net.loss(theta0(net, 1), x, y, mask)


# -- stopping and outcomes ---------------------------------------------------------------


class FakeTask:
    def __init__(self, when):
        self.when, self.calls = when, 0

    def solved(self, net, theta):
        self.calls += 1
        return self.calls >= self.when


def test_target_solved_and_precedence():
    net = Elman(1, 4, 1)
    data = echo()
    tr = run("bptt_sgd", net, None, data, seed=0, budget={"evals": 10}, target_loss=1e9)
    assert tr.outcome == "target" and tr.evals == 1
    tr = run("bptt_sgd", net, FakeTask(1), data, seed=0, budget={"evals": 10}, target_loss=1e9)
    assert tr.outcome == "solved" and tr.evals == 1  # solved > target
    task = FakeTask(3)
    tr = run("bptt_online", net, task, data, seed=0, budget={"evals": 10_000})
    assert tr.outcome == "solved" and task.calls == 3
    tr = run("bptt_sgd", net, FakeTask(10**9), data, seed=0, budget={"evals": 10})
    assert tr.outcome == "budget" and tr.evals == 10


@pytest.mark.trajectory
def test_an_exploding_configuration_ends_diverged_with_its_trace():
    net = Elman(1, 8, 1)
    tr = run(
        "bptt_sgd",
        net,
        None,
        echo(),
        seed=0,
        budget={"evals": 100_000},
        lr=5.0,
        reduction="sum",
        init_scale=2.0,
    )
    assert tr.outcome == "diverged" and "non-finite" in tr.message
    df = tr.to_frame()
    assert len(df) >= 5 and np.isfinite(df["loss"].iloc[:-1]).all()
    assert tr.evals < 100_000 and np.isfinite(tr.best_loss)
    assert np.isfinite(tr.best_theta).all()


def test_an_exception_during_training_ends_error():
    class Broken(Elman):
        calls = 0

        def loss_and_grad(self, *a, **kw):
            Broken.calls += 1
            if Broken.calls > 3:
                raise RuntimeError("boom")
            return super().loss_and_grad(*a, **kw)

    tr = run("bptt_sgd", Broken(1, 3, 1), None, echo(), seed=0, budget={"evals": 10})
    assert tr.outcome == "error" and "boom" in tr.message and tr.evals == 3


def test_cosine_schedule_defaults_to_the_evals_budget():
    net = Elman(1, 3, 1)
    tr = run("bptt_sgd", net, None, echo(), seed=0, budget={"evals": 5}, schedule="cosine")
    assert tr.outcome == "budget"
    with pytest.raises(ValueError, match="decay_steps"):
        run("bptt_sgd", net, None, echo(), seed=0, budget={"wall_s": 1.0}, schedule="cosine")


# -- determinism ------------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import hashlib, numpy as np
    from toolkit.nets import Elman
    from toolkit.train import run
    x = np.random.default_rng(0).uniform(-1, 1, size=(6, 10, 1))
    y = np.roll(x, 2, axis=1); mask = np.ones((6, 10)); mask[:, :2] = 0
    h = hashlib.sha256()
    for method, hyper in [("bptt_adam", dict(batch_size=2, k=3)),
                          ("bptt_online", dict(k=3, optimizer="momentum", average="copies")),
                          ("bptt_k1k2", dict(k1=3, k2=5))]:
        tr = run(method, Elman(1, 4, 1), None, (x, y, mask), seed=11, budget={"evals": 300},
                 **hyper)
        df = tr.to_frame().drop(columns="wall_s")
        h.update(df.to_numpy().tobytes()); h.update(tr.final_theta.tobytes())
        h.update(tr.best_theta.tobytes()); h.update(tr.outcome.encode())
    print(h.hexdigest())
    """
)


def test_same_seed_same_trace_in_two_processes():
    root = Path(toolkit.__file__).parent.parent
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    digests = [out.strip() for out, _ in outs]
    assert len(digests[0]) == 64 and digests[0] == digests[1]


# -- smoke: online BPTT learns the delayed echo ----------------------------------------


@pytest.mark.trajectory
def test_online_bptt_learns_a_delayed_echo():
    """At least 4 of 5 seeds solve within 100,000 updates (seeds 0-4 took 374-13,159 on an
    AVX-512 machine: a margin of about 8x for the slowest), and a solved net's loss is below
    1 % of the initial one."""
    from toolkit import tasks

    task = tasks.get("echo", d=2, T=20)
    data = task.generate(np.random.default_rng(0))
    net = Elman(task.n_in, 8, task.n_out, output=task.output)
    solved = 0
    for seed in range(5):
        L0 = net.loss(theta0(net, seed), data.x, data.y, data.mask)
        tr = run("bptt_online", net, task, data, seed=seed, budget={"evals": 100_000}, k=4, lr=0.1)
        if tr.outcome == "solved":
            solved += 1
            assert net.loss(tr.best_theta, data.x, data.y, data.mask) < 0.01 * L0
    assert solved >= 4, f"{solved} of 5 seeds solved the delayed echo"


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, hyper, match",
    [
        ("bptt_sgd", {"lr": 0}, "lr"),
        ("bptt_adam", {"lr": -1e-3}, "lr"),
        ("bptt_sgd", {"lr": float("nan")}, "lr"),
        ("bptt_sgd", {"k": 0}, "k: expected an integer >= 1 or None"),
        ("bptt_online", {"k": 0}, "k: expected an integer >= 1"),
        ("bptt_online", {"optimizer": "rmsprop"}, "optimizer: expected one of sgd, momentum, adam"),
        ("bptt_online", {"average": "mean"}, "average"),
        ("bptt_sgd", {"momentum": 0.9}, "momentum: unknown hyperparameter"),
        ("bptt_sgd", {"schedule": "linear"}, "schedule"),
        ("bptt_sgd", {"schedule": "step"}, "decay_steps"),
        ("bptt_sgd", {"schedule": "cosine", "lr": 0.1, "lr_min": 0.2}, "lr_min"),
        ("bptt_k1k2", {"k1": 5, "k2": 4}, "k2"),
        ("bptt_sgd", {"batch_size": 0}, "batch_size"),
        ("bptt_momentum", {"momentum": 1.0}, "momentum"),
        ("bptt_sgd", {"clip": 0}, "clip"),
        ("bptt_sgd", {"shuffle": "yes"}, "shuffle"),
        ("bptt_sgd", {"k": 2.5}, "k"),
    ],
)
def test_bad_hyperparameters_raise_before_training(method, hyper, match):
    with pytest.raises(ValueError, match=match):
        METHODS[method].validate(hyper)
    with pytest.raises(ValueError, match=match):
        run(method, Elman(1, 2, 1), None, echo(), seed=0, budget={"evals": 1}, **hyper)


@pytest.mark.parametrize(
    "method, hyper, budget, match",
    [
        ("bptt_sgd", {}, {}, "budget"),
        ("bptt_sgd", {}, {"evals": 0}, "budget.evals"),
        ("bptt_sgd", {}, {"steps": 10}, "budget"),
        ("bptt_sgd", {"batch_size": 7}, {"evals": 1}, "batch_size"),  # B = 6
        ("bptt_online", {"k": 13}, {"evals": 1}, "k: expected an int <= the sequence length"),
        ("bptt_online", {"k": 1}, {"evals": 1}, None),  # fine
    ],
)
def test_bad_budget_and_data_dependent_hyperparameters(method, hyper, budget, match):
    net = Elman(1, 2, 1)
    if match is None:
        assert run(method, net, None, echo(), seed=0, budget=budget, **hyper).outcome == "budget"
        return
    with pytest.raises(ValueError, match=match):
        run(method, net, None, echo(), seed=0, budget=budget, **hyper)


def test_bad_data_raises_before_training():
    net = Elman(1, 2, 1)
    x, y, mask = echo()
    tr = Trace("bptt_sgd")
    train = METHODS["bptt_sgd"].train
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="y: expected shape"):
        train(net, (x, y[:, :, :0], mask), rng=rng, budget=Budget(evals=1), trace=tr)
    with pytest.raises(ValueError, match="mask"):
        train(net, (x, y, 0 * mask), rng=rng, budget=Budget(evals=1), trace=tr)
    with pytest.raises(ValueError, match="k: no window"):
        m = mask.copy()
        m[:, 3:] = 0
        METHODS["bptt_online"].train(net, (x, y, m), rng=rng, budget=Budget(evals=1), trace=tr, k=5)
    assert tr.evals == 0 and tr.outcome is None
