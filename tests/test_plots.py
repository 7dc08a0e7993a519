"""Figures: every plot function runs on small synthetic tables (CONTRACTS.md schema) and writes
non-empty PNG and PDF files; the same tables give the same PNG bytes."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from toolkit import landscape, plots

GRAD = {"bptt_adam", "bptt_sgd", "bptt_momentum", "bptt_online", "bptt_truncated"}


def make_tables(
    *,
    methods=("bptt_adam", "cmaes", "random"),
    tasks=("xor", "adding"),
    seeds=6,
    settings=((20, 4),),
    ks=None,
    seed=0,
    experiment="synthetic",
):
    """Synthetic runs/traces tables following the results-store schema (docs/CONTRACTS.md).

    Each run's best loss decays from about 1 towards a basin level drawn per seed (solved runs
    stop at 1e-3..1e-4, others plateau at 0.05 or 0.3); gradient methods are ~10x cheaper per
    decade. One random run diverges. settings: (T, n_hidden) pairs run for every task; ks:
    unfold depths of extra bptt_truncated series (None = full BPTT).
    """
    rng = np.random.default_rng(seed)
    runs, traces = [], []
    rid = 0
    for task in tasks:
        for T, H in settings:
            if True:
                n_params = H * 1 + H * H + H + H + 1
                mlist = [(m, {"lr": 0.01} if m in GRAD else {"sigma0": 0.5}) for m in methods]
                if ks is not None:
                    mlist += [("bptt_truncated", {"lr": 0.01, "k": k}) for k in ks]
                for m, mp in mlist:
                    for rep in range(seeds):
                        speed = 1e2 if m in GRAD else 1e3 if m != "random" else 1e4
                        speed *= n_params / 25 * T / 20
                        p_solve = 0.7 if m in GRAD else 0.4 if m != "random" else 0.1
                        if mp.get("k"):
                            p_solve *= min(1.0, mp["k"] / T + 0.2)
                        solved = rng.random() < p_solve
                        level = 10 ** rng.uniform(-4, -3) if solved else rng.choice([0.05, 0.3])
                        budget = 2e5
                        evals = np.unique(np.round(1.05 ** np.arange(0, 400)).astype(int))
                        fe = evals * 20.0 * T / 20
                        best = level + (1.0 - level) / (1 + fe / speed) ** 1.5
                        loss = best * (1 + 0.2 * rng.random(best.size))
                        stop = fe <= budget
                        outcome = "budget"
                        if solved:
                            hit = np.flatnonzero(best <= level * 1.5)
                            if hit.size:
                                stop &= np.arange(fe.size) <= hit[0]
                                outcome = "solved"
                        diverged = m == "random" and rep == 0 and task == tasks[0]
                        if diverged:
                            stop &= np.arange(fe.size) < 30
                            outcome = "diverged"
                        ev, f, b, lo = evals[stop], fe[stop], best[stop], loss[stop]
                        if diverged:
                            lo = lo.copy()
                            lo[-1] = np.inf
                        wall = f * 1e-6 * (1 + 0.1 * rng.random())
                        run_id = f"r{rid:04d}"
                        rid += 1
                        grid = {"grid.T": T, "grid.n_hidden": H}
                        runs.append(
                            {
                                "experiment": experiment,
                                "run_id": run_id,
                                "replicate": rep,
                                "seed": int(rng.integers(2**31)),
                                "task": task,
                                "task_params": json.dumps({"T": T, "n_train": 32}),
                                "method": m,
                                "method_params": json.dumps(mp),
                                "n_hidden": H,
                                "n_params": n_params,
                                "hidden": "tanh",
                                "output": "linear",
                                "outcome": outcome,
                                "evals": int(ev[-1]),
                                "fwd_steps": float(f[-1]) if m not in GRAD else 0.0,
                                "grad_steps": float(f[-1]) / 3 if m in GRAD else 0.0,
                                "fwd_equiv": float(f[-1]),
                                "final_loss": float(lo[-1]),
                                "best_loss": float(b[-1]),
                                "solved_at_evals": float(ev[-1]) if outcome == "solved" else None,
                                "solved_at_fwd_equiv": float(f[-1])
                                if outcome == "solved"
                                else None,
                                "wall_s": float(wall[-1]),
                                "compile_s": 0.5,
                                "error": "",
                                **grid,
                            }
                        )
                        traces.append(
                            pd.DataFrame(
                                {
                                    "run_id": run_id,
                                    "method": m,
                                    "task": task,
                                    "evals": ev,
                                    "fwd_steps": f,
                                    "grad_steps": 0.0,
                                    "fwd_equiv": f,
                                    "wall_s": wall,
                                    "loss": lo,
                                    "best_loss": b,
                                    "grad_norm": np.nan,
                                }
                            )
                        )
    return pd.DataFrame(runs), pd.concat(traces, ignore_index=True)


class TinyNet:
    """Stand-in for toolkit.nets.Elman (1 input, 2 hidden, 1 output, linear output)."""

    n_params = 2 + 4 + 2 + 2 + 1

    def unpack(self, theta):
        t = np.asarray(theta)
        return {
            "W_xh": t[0:2].reshape(2, 1),
            "W_hh": t[2:6].reshape(2, 2),
            "b_h": t[6:8],
            "W_hy": t[8:10].reshape(1, 2),
            "b_y": t[10:11],
        }

    def loss(self, theta, x, y, mask=None):
        p = self.unpack(theta)
        h = np.zeros((x.shape[0], 2))
        L = 0.0
        for t in range(x.shape[1]):
            h = np.tanh(x[:, t] @ p["W_xh"].T + h @ p["W_hh"].T + p["b_h"])
            L += 0.5 * np.sum((h @ p["W_hy"].T + p["b_y"] - y[:, t]) ** 2)
        return float(L)

    def loss_and_grad(self, theta, x, y, mask=None, k=None):
        theta = np.asarray(theta, float)
        g = np.zeros_like(theta)
        for i in range(theta.size):
            e = np.zeros_like(theta)
            e[i] = 1e-6
            g[i] = (self.loss(theta + e, x, y) - self.loss(theta - e, x, y)) / 2e-6
        if k is not None:  # a crude stand-in for truncation: damp the recurrent part
            g[2:6] *= min(1.0, k / x.shape[1])
        return self.loss(theta, x, y), g


def landscape_tables():
    net = TinyNet()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6, 1))
    y = np.cumsum(x, axis=1) * 0.3
    th = [rng.normal(size=net.n_params) for _ in range(2)]
    tabs = landscape.net_tables(
        net,
        th,
        x,
        y,
        labels=["seed 1", "seed 2"],
        n_1d=11,
        n_2d=7,
        n_interp=11,
        n_directions=2,
        task="delayed sum (T=6)",
    )
    tabs.update(landscape.cliff_tables(n_w=40, n_b=40, steps=30, generations=15))
    tabs["gradient_fidelity"] = landscape.gradient_fidelity(net, th, x, y, ks=[1, 2, 4])
    return tabs


@pytest.fixture(scope="module")
def tables():
    return make_tables()


def _check_files(paths):
    assert paths
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000, p
    assert {p.suffix for p in paths} == {".png", ".pdf"}


def test_method_styles_fixed_and_distinct():
    from toolkit.train import METHODS

    names = list(METHODS)  # every registered method: its own colour, marker and label
    assert len({plots.method_style(n)["marker"] for n in names}) == len(names)
    assert all(plots.method_label(n) == METHODS[n].label for n in names)
    colors = [plots.method_color(n) for n in names]
    assert len(set(colors)) == len(names)
    assert plots.method_color("cmaes") == plots.method_color("cmaes (sigma0=0.3)")
    # unknown names: a stable colour from the remaining palette
    c = plots.method_color("my_new_method")
    assert c == plots.method_color("my_new_method") and c in plots.EXTRA_COLORS
    assert plots.method_label("es_comma (lr=0.1)") == "(μ,λ)-ES, lr=0.1"


def test_plot_experiment_writes_all_supported_figures(tmp_path, tables):
    runs, traces = tables
    d = tmp_path / "exp"
    d.mkdir()
    # a lag sweep, a size sweep and a truncation sweep in one table keeps the test small
    r2, t2 = make_tables(
        methods=("bptt_adam", "cmaes"),
        tasks=("latch",),
        seeds=3,
        settings=((10, 2), (40, 2), (10, 6)),
        ks=(1, 4, None),
        seed=3,
    )
    r2["run_id"] = "b" + r2["run_id"]
    t2["run_id"] = "b" + t2["run_id"]
    pd.concat([runs, r2]).to_parquet(d / "runs.parquet")
    pd.concat([traces, t2]).to_parquet(d / "traces.parquet")
    (d / "meta.json").write_text(
        json.dumps({"experiment": "synthetic", "config": {"target_loss": 1e-3}})
    )
    for name, df in landscape_tables().items():
        df.to_parquet(d / f"{name}.parquet")
    pd.DataFrame({"jobs": [1, 1, 2, 2], "wall_s": [10.0, 10.4, 5.6, 5.5]}).to_parquet(
        d / "parallel.parquet"
    )
    anatomy_table().to_parquet(d / "anatomy.parquet")
    paths = plots.plot_experiment(d, dpi=60, n_boot=200)
    _check_files(paths)
    stems = {p.stem for p in paths}
    assert stems == {
        "convergence_fwd_equiv",
        "convergence_wall_s",
        "ecdf",
        "final_loss",
        "success_vs_T",
        "scaling",
        "truncation",
        "cliff",
        "bifurcation",
        "loss_slices",
        "grad_norm_slice",
        "parallel_scaling",
        "failure_anatomy",
    }
    assert all(p.parent == d / "figures" for p in paths)


def anatomy_table() -> pd.DataFrame:
    """A small anatomy.parquet: failed runs of two methods on a recurrent and a feed-forward
    net of two tasks, with every class."""
    classes = ("local minimum", "saddle", "plateau", "slow")
    rows = [
        dict(task=t, method=m, recurrent=r, window=1 if r else 2, **{"class": classes[i % 4]})
        for t in ("xor", "parity")
        for m in ("bptt_adam", "cmaes")
        for r in (True, False)
        for i in range(3 + (m == "cmaes") + 2 * r)
    ]
    return pd.DataFrame(rows)


def test_failure_anatomy_bars_are_shares(tmp_path):
    df = anatomy_table()
    fig = plots.fig_failure_anatomy(df, title="t")
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["xor", "parity"]
    ax = fig.axes[0]
    # per bar, the stacked class shares add up to 1
    tops: dict[float, float] = {}
    for p in ax.patches:
        x = round(p.get_x() + p.get_width() / 2, 6)
        tops[x] = tops.get(x, 0.0) + p.get_height()
    assert len(tops) == 4 and all(v == pytest.approx(1.0) for v in tops.values())
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["local minimum", "saddle", "plateau", "slow"]
    _check_files(plots.save_figure(fig, tmp_path / "fa", dpi=50))


def test_plot_experiment_skips_missing_tables(tmp_path, tables):
    runs, _ = tables
    runs.to_parquet(tmp_path / "runs.parquet")
    paths = plots.plot_experiment(tmp_path, dpi=50, formats=("png",))
    assert [p.name for p in paths] == ["final_loss.png"]
    with pytest.raises(FileNotFoundError, match="results_dir"):
        plots.plot_experiment(tmp_path / "nope")


def test_same_tables_same_png_bytes(tmp_path, tables):
    runs, traces = tables
    a = plots.save_figure(plots.fig_ecdf(runs, traces, title="t"), tmp_path / "a", dpi=60)
    b = plots.save_figure(plots.fig_ecdf(runs, traces, title="t"), tmp_path / "b", dpi=60)
    assert a[0].read_bytes() == b[0].read_bytes()
    assert a[1].read_bytes() == b[1].read_bytes()  # PDF too: no dates, no producer string
    assert b"matplotlib" not in a[0].read_bytes().lower()
    # the strip plot's jitter is seeded: same table, same bytes
    one = runs[runs["task"] == "xor"]
    c = plots.save_figure(plots.fig_final_loss(one), tmp_path / "c", formats=("png",), dpi=50)
    d = plots.save_figure(plots.fig_final_loss(one), tmp_path / "d", formats=("png",), dpi=50)
    assert c[0].read_bytes() == d[0].read_bytes()
    # different data, different bytes (the comparison is not vacuous)
    e = plots.save_figure(
        plots.fig_final_loss(one.iloc[1:]), tmp_path / "e", formats=("png",), dpi=50
    )
    assert e[0].read_bytes() != c[0].read_bytes()


def test_figure_functions_single_task(tmp_path, tables):
    runs, traces = tables
    one = runs[runs["task"] == "xor"]
    fig = plots.fig_final_loss(one, target_loss=1e-3, title="xor only")
    assert fig.get_figwidth() == pytest.approx(plots.COLUMN_W)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel()
    assert "xor only" in fig._suptitle.get_text()
    _check_files(plots.save_figure(fig, tmp_path / "fl", dpi=50))
    fig = plots.fig_convergence(one, traces, title="xor only")
    assert fig.axes[0].get_xscale() == "log"
    assert fig.legends and len(fig.legends[0].get_texts()) == 3
    assert "Evaluated" not in fig._suptitle.get_text()
    assert math.isclose(fig.get_figwidth(), plots.COLUMN_W)


def test_tuning_sensitivity_shows_each_varied_knob_with_rates_per_configuration(tmp_path):
    import json as _json

    rows = []
    for cond, solve_upto in (("a", 2), ("b", 0)):
        for j, lr in enumerate((0.001, 0.01, 0.1)):
            for s in range(2):
                ok = j < solve_upto and s == 0
                rows.append(
                    {
                        "run_id": f"{cond}{j}{s}",
                        "task": "xor",
                        "n_hidden": 2,
                        "grid.setup": cond,
                        "method": "bptt_adam",
                        "method_params": _json.dumps({"lr": lr, "beta1": 0.9}),
                        "grid.tuning_config": j,
                        "outcome": "solved" if ok else "budget",
                        "fwd_equiv": 10.0 if ok else 100.0,
                        "solved_at_fwd_equiv": 10.0 if ok else np.nan,
                    }
                )
    fig = plots.fig_tuning_sensitivity(pd.DataFrame(rows), title="t")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes[:1]] == ["BPTT (Adam): lr"]  # beta1 never varied
    assert len(axes) == 2 and axes[0].get_xscale() == "log"
    rates = sorted(tuple(map(float, o)) for c in axes[0].collections for o in c.get_offsets())
    assert rates == sorted(
        [(0.001, 0.5), (0.01, 0.5), (0.1, 0.0)] + [(x, 0.0) for x in (0.001, 0.01, 0.1)]
    )
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["a", "b", "solved nothing"]
    _check_files(plots.save_figure(fig, tmp_path / "ts", dpi=50))


def test_success_vs_joins_the_points_tuned_one_by_one():
    """With a configuration tuned per point, a method is one line across the lags, labelled
    "tuned per point" (not one lone point per configuration), and a condition in which no
    single configuration ran at two lags still gets its panel; a method with two settings at
    one point keeps both series."""
    ann = pd.DataFrame(
        {
            "condition": ["a"] * 4 + ["b"] * 2,
            "method": ["bptt_adam", "bptt_adam", "cmaes", "cmaes", "bptt_adam", "bptt_adam"],
            "variant": [
                "bptt_adam (lr=0.1)",
                "bptt_adam (lr=0.01)",
                "cmaes (sigma=1)",
                "cmaes (sigma=2)",
                "bptt_adam (lr=0.1)",
                "bptt_adam (lr=0.3)",
            ],
            "_x": [4.0, 10.0, 4.0, 4.0, 4.0, 10.0],
        }
    )
    P = plots
    out = P._tuned_series(ann, "_x")
    assert set(out.loc[out["method"] == "bptt_adam", "variant"]) == {"bptt_adam (tuned per point)"}
    assert set(out.loc[out["method"] == "cmaes", "variant"]) == {
        "cmaes (sigma=1)",
        "cmaes (sigma=2)",
    }
    assert P.method_label("bptt_adam (tuned per point)") == "BPTT (Adam), tuned per point"
    titles = P._short_titles(
        [
            "two_sequence (cell=gru, hidden=-, setup=two_sequence_gru)",
            "two_sequence (cell=elman, hidden=tanh, setup=two_sequence)",
            "latch",
        ]
    )
    assert list(titles.values()) == [
        "two_sequence (cell=gru)",
        "two_sequence (cell=elman)",
        "latch",
    ]
    clash = ["x (setup=a)", "x (setup=b)"]
    assert P._short_titles(clash) == {c: c for c in clash}  # would collide: kept whole
