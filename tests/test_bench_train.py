"""benchmarks/bench_train.py on one tiny configuration: the table's structure, no wall clock."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_train  # noqa: E402

from toolkit import kernels  # noqa: E402
from toolkit.nets import Elman  # noqa: E402

TINY = bench_train.Config(
    "tiny xor H=2", "temporal_xor", {"mask": "predictable", "T": 6, "n_train": 4}, 2, 2,
    {"k": 3, "lr": 0.3},
)  # fmt: skip


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    return bench_train.run_all(configs=(TINY,), updates=6, gens=3, repeats=1)


def test_rows_cover_every_method_with_valid_shares(rows):
    assert [r.method for r in rows] == [
        "bptt_adam",
        "bptt_adam",
        "bptt_online",
        "cmaes",
        "es_comma",
    ]
    for r in rows:
        for share in (r.kernel, r.net, r.solved, r.eigh, r.train):
            assert 0.0 <= share <= 1.0, r
        assert r.kernel + r.net + r.solved + r.eigh <= 1.0 + 1e-9, r
        assert r.train >= r.kernel, r  # the share of the training time (solved checks out)
        if r.method != "cmaes":
            assert r.eigh == 0.0, r  # only CMA-ES decomposes a covariance matrix
        assert r.rate > 0 and r.wall_us > 0 and r.kernel_us > 0, r
        assert r.steps == (6 if r.family == "gradient" else 3), r
        assert r.target == bench_train.TARGET_SHARE[r.family]
        assert r.solved_calls >= 1, r  # the real check ran, and did not stop the run


def test_table_and_baseline_ratio(rows, tmp_path):
    text = bench_train.table(rows)
    lines = text.splitlines()
    assert len(lines) == 1 + len(rows)
    assert "kernel" in lines[0] and "x base" not in lines[0]
    path = tmp_path / "base.json"
    bench_train.write_baseline(rows, "abc", path)
    base = bench_train.read_baseline(path)
    assert base["commit"] == "abc" and set(base["rates"]) == {r.key for r in rows}
    with_ratio = bench_train.table(rows, base).splitlines()
    assert "x base" in with_ratio[0]
    assert all("1.00x" in line for line in with_ratio[1:])


def test_instrumentation_is_undone():
    saved = {n: getattr(kernels, n) for n in bench_train.KERNELS}
    methods = {n: Elman.__dict__[n] for n in bench_train.NET_METHODS}
    eigh = np.linalg.eigh
    with bench_train.instrumented(bench_train.Clock()):
        assert kernels.loss_and_grad is not saved["loss_and_grad"]
        assert np.linalg.eigh is not eigh
    assert np.linalg.eigh is eigh
    assert {n: getattr(kernels, n) for n in bench_train.KERNELS} == saved
    assert {n: Elman.__dict__[n] for n in bench_train.NET_METHODS} == methods


def test_side_by_side_table_ratios_and_targets():
    """--against's table: the ratio of the medians per row, the 3x target judged for BPTT rows
    at H <= 8 only."""
    cfg = bench_train.CONFIGS[0]
    labels = [lab for lab, _, _ in bench_train.methods(cfg)]
    got = {
        f"{cfg.label} | {labels[0]}": ([100.0, 120.0, 110.0], [400.0, 300.0, 350.0]),
        f"{cfg.label} | {labels[3]}": ([10.0], [11.0]),  # CMA-ES: no rate target
    }
    lines = bench_train.side_by_side_table(got, "abc123").splitlines()
    assert "3.18x  meets" in lines[1]  # 350 / 110
    assert lines[2].rstrip().endswith("1.10x")
    assert "abc123" in lines[-1]
    # a full batch's bare kernel times ([forward, gradient] per worker) become a note
    got[f"{cfg.label} | {labels[0]}" + bench_train.FLOOR] = (
        [[5.0, 9.0], [6.0, 10.0]],
        [[1.0, 2.0], [1.5, 2.5], [2.0, 3.0]],
    )
    lines = bench_train.side_by_side_table(got, "abc123").splitlines()
    assert len(lines) == 5 and "abc123" in lines[3]
    assert "3x the base rate leaves 3030.3 us per update" in lines[4]  # 1e6 / (3 * 110)
    assert "forward pass on the batch takes 1.5 us and the gradient 2.5 us" in lines[4]
    assert "(base: 9.5 us)" in lines[4]
    with pytest.raises(SystemExit):
        bench_train.main(["--against", "HEAD", "--repeats", "0"])


def test_interleaved_needs_against(capsys):
    with pytest.raises(SystemExit):
        bench_train.main(["--interleaved"])
    assert "--interleaved: goes with --against REV" in capsys.readouterr().err


def test_against_an_unknown_commit_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench_train.main(["--against", "no-such-commit-xyz"])
    assert "--against: 'no-such-commit-xyz' is not a commit" in capsys.readouterr().err
