"""Long checks, run by `make test-slow` (marker ``slow``; excluded from `make test`).

`make test-slow` also runs the whole suite with the kernels compiled for AVX2 (tests/avx2.py),
and `make test-lowest` runs it on the lowest supported versions (constraints/lowest.txt).
"""

from pathlib import Path

import pytest

from toolkit import cli, plots, store

ROOT = Path(__file__).resolve().parent.parent
TIMING_FIGURES = ("convergence_wall_s", "parallel_scaling")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["cliff", "truncation"])
def test_default_scale_experiment_end_to_end(name, tmp_path, capsys):
    """One default-scale experiment as `make experiments` runs it: every run finishes without
    an error, its figures are drawn, and drawing them again from the same tables gives the
    same bytes (figures come from stored tables only)."""
    results = tmp_path / "results"
    code = cli.main(
        ["run", str(ROOT / "experiments" / f"{name}.toml"), "--results", str(results)]
        + ["--no-progress"]
    )
    assert code == 0, capsys.readouterr().err
    d = results / name
    runs = store.load_runs(d)
    assert len(runs) and (runs["outcome"] != "error").all()
    meta = store.load_meta(d)
    assert meta["status"] == "complete" and meta["scale"] == "default"
    plots.plot_experiment(d)
    first = {p.name: p.read_bytes() for p in (d / "figures").glob("*.png")}
    assert first
    plots.plot_experiment(d)
    for p in (d / "figures").glob("*.png"):
        if p.stem not in TIMING_FIGURES:
            assert p.read_bytes() == first[p.name], p.name
