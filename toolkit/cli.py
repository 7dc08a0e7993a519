"""The ``bptt`` command (also ``python -m toolkit``).

    bptt run EXPERIMENT.toml [--jobs N] [--seeds N] [--out DIR] [--scale NAME]
                             [--backend loky|dask] [--scheduler ADDRESS] [--dry-run] [--force]
    bptt plot RESULTS_DIR            figures of one experiment (from its stored tables)
    bptt report [--results DIR]      results/REPORT.md from every experiment's tables
    bptt bench [ARGS...]             the speed harness, benchmarks/run.py
    bptt experiments [--scale S] ... every experiments/*.toml, then the figures and the report

Exit status: 0 success; 1 some runs failed (all others finished and are stored); 2 bad input
(config problems, incompatible results directory, unreachable scheduler, another process
writing to the results directory); 3 the sweep stopped before its results were complete (an I/O
error, a worker died, damaged run files or runs missing from a merge: what is stored stays, run
the same command again to resume); 130 interrupted. Errors are one message on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path

SCALES = ("smoke", "default", "paper")
BACKENDS = ("loky", "dask")


def _int_at_least(lo: int, expected: str):
    """An argparse type: an integer >= ``lo``; ``expected`` says so in the message."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if n < lo:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {n}")
        return n

    return parse


_jobs = _int_at_least(0, "an integer >= 1 (0 = all cores)")
_positive = _int_at_least(1, "an integer >= 1")


def _add_results(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="root of the results (default results)",
    )


def _add_exec_options(p: argparse.ArgumentParser, *, strict_choices: bool = True) -> None:
    """strict_choices=False: --backend is checked by the command (a one-line error)."""
    p.add_argument(
        "--jobs",
        "-j",
        type=_jobs,
        default=0,
        metavar="N",
        help="parallel runs (default 0 = all cores; with --scheduler the cluster decides)",
    )
    p.add_argument(
        "--backend",
        default="loky",
        choices=BACKENDS if strict_choices else None,
        metavar=None if strict_choices else "loky|dask",
        help="loky: processes on this machine (default); dask: a dask.distributed "
        "cluster (--scheduler) or a local one",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="dask scheduler address, e.g. tcp://host:8786 (with --backend dask)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for the dask scheduler and workers (default 10)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--force-large",
        action="store_true",
        help="allow an experiment that expands to more than 100,000 runs (refused otherwise, "
        "before anything is expanded or written)",
    )


def version_text() -> str:
    """What ``bptt --version`` prints: the toolkit's version and git commit, the versions of
    the packages its results depend on, and the kernels' vector target."""
    from importlib import metadata

    from toolkit import __version__, store
    from toolkit.kernels.simd import target_has_avx512

    env = store.environment()
    commit, dirty = env["git"]["commit"], env["git"]["dirty"]
    where = f" (git {commit[:12]}{', uncommitted changes' if dirty else ''})" if commit else ""
    pkgs = []
    for name in ("numba", "llvmlite", "numpy", "deap", "joblib", "dask"):
        try:
            pkgs.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pkgs.append(f"{name} missing")
    target = "AVX-512 (8x16 tiles)" if target_has_avx512() else "no AVX-512 (4x8 tiles)"
    return (
        f"bptt-toolkit {__version__}{where}\n"
        f"Python {env['versions']['python']}; {', '.join(pkgs)}\n"
        f"kernels: {target}, {env['cpu']['model']}"
    )


class _Version(argparse.Action):
    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, help="print versions and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bptt",
        description="BPTT vs evolutionary optimization for Elman networks: run experiments, "
        "draw figures, write the report.",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "run",
        help="run one experiment file (resumes; skips stored runs)",
        description="Expand an experiment file into runs and execute them in "
        "parallel; finished runs are stored at once and skipped on "
        "a rerun.",
    )
    p.add_argument("config", type=Path, help="experiment file (TOML), e.g. experiments/speed.toml")
    _add_exec_options(p)
    p.add_argument(
        "--seeds",
        type=_positive,
        default=None,
        metavar="N",
        help="replicates (seeds) per configuration, overrides the file",
    )
    p.add_argument(
        "--scale",
        default="default",
        metavar="NAME",
        help="apply [scales.NAME] of the file (default: default)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="results directory of this experiment (default results/<name>)",
    )
    _add_results(p)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the run table and the estimated cost (with a [tuning] table: the tuning "
        "plan and its cost first); run nothing",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="discard stored results of this experiment and rerun everything",
    )
    p.add_argument(
        "--skip-tuning",
        type=Path,
        metavar="FILE",
        help="reuse the tuning choices stored in FILE (a tuning.json) instead of tuning",
    )

    p = sub.add_parser("plot", help="draw the figures of one experiment from its stored results")
    p.add_argument("dir", type=Path, help="results directory, e.g. results/speed")

    p = sub.add_parser("report", help="write results/REPORT.md")
    _add_results(p)

    p = sub.add_parser("bench", help="run the speed benchmarks (benchmarks/run.py)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to benchmarks/run.py")

    p = sub.add_parser(
        "experiments", help="run every experiment file, then the figures and the report"
    )
    p.add_argument(
        "--scale",
        default="default",
        metavar="|".join(SCALES),
        help="smoke: the whole pipeline in about a minute; default: the suite in about "
        "15 minutes on 2 cores (measured; see README); paper: full grids, >= 30 seeds per "
        "condition (hours)",
    )
    _add_exec_options(p, strict_choices=False)
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("experiments"),
        metavar="DIR",
        help="directory of experiment files (default experiments)",
    )
    _add_results(p)
    return parser


def _err(msg: str) -> None:
    print(f"bptt: {msg}", file=sys.stderr)


def _check_backend(args) -> bool:
    if args.backend not in BACKENDS:
        _err(f"--backend {args.backend!r} is not one of: {', '.join(BACKENDS)}")
        return False
    if args.scheduler and args.backend != "dask":
        _err("--scheduler needs --backend dask")
        return False
    return True


def _exec_options(args, **kw):
    """The one :class:`toolkit.sweep.ExecOptions` of a command."""
    from toolkit import config, sweep

    return sweep.ExecOptions(
        jobs=args.jobs,
        backend=args.backend,
        scheduler=args.scheduler,
        timeout=args.timeout,
        progress=not args.no_progress,
        max_runs=None if args.force_large else config.MAX_RUNS,
        results_root=args.results,
        **kw,
    )


def _cmd_run(args) -> int:
    from toolkit import config, store, suite, sweep

    if not _check_backend(args):
        return 2

    if args.skip_tuning is not None and not args.skip_tuning.is_file():
        _err(f"--skip-tuning {args.skip_tuning}: no such file (a tuning.json of an earlier run)")
        return 2
    opts = _exec_options(
        args, out=args.out, force=args.force, dry_run=args.dry_run, skip_tuning=args.skip_tuning
    )
    try:  # the file is read once: config.load validates the sweep, its parts and [post]
        sexp = config.load(args.config, scale=args.scale, seeds=args.seeds, max_runs=opts.max_runs)
        res = suite.run(sexp, opts)  # (tuning, parts, post steps when the file has them)
    except (sweep.SweepStopped, store.DamagedResults) as e:
        _err(str(e))
        return 3
    except (config.ConfigError, store.IncompatibleResults, sweep.SweepError) as e:
        _err(str(e))
        return 2
    return 0 if res.ok else 1


def _lazy(module: str, attr: str, what: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as e:
        if getattr(e, "name", None) == module or module in str(e):
            _err(f"{what} is not available: {module} cannot be imported ({e})")
            return None
        raise
    except AttributeError:
        _err(f"{what} is not available: {module} has no {attr}()")
        return None


def _cmd_plot(args) -> int:
    if not args.dir.is_dir():
        _err(f"{args.dir}: no such results directory (run `bptt run` first)")
        return 2
    plot_experiment = _lazy("toolkit.plots", "plot_experiment", "plotting")
    if plot_experiment is None:
        return 2
    out = plot_experiment(Path(args.dir))
    if out:
        for f in out if isinstance(out, list | tuple) else [out]:
            print(f)
    return 0


def _cmd_report(args) -> int:
    write_report = _lazy("toolkit.report", "write_report", "the report")
    if write_report is None:
        return 2
    out = write_report(Path(args.results))
    if out:
        print(out)
    return 0


def _cmd_bench(args) -> int:
    script = Path("benchmarks") / "run.py"
    if not script.exists():
        script = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
    if not script.exists():
        _err("benchmarks/run.py not found (run `bptt bench` from the repository root)")
        return 2
    argv = sys.argv
    sys.argv = [str(script), *args.args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return 0


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> bool:
    if value not in allowed:
        _err(f"{name} {value!r} is not one of: {', '.join(allowed)}")
        return False
    return True


def _plot_all(plot_experiment, dirs: list[Path], jobs: int | None) -> None:
    """Draw every experiment's figures, one experiment per process on ``jobs`` local processes
    (0 or None: all cores). Drawing is matplotlib's layout and rendering, about 20-50 s of one
    core per experiment at the default scale, and the figures do not depend on the process
    that draws them."""
    from joblib import Parallel, delayed

    from toolkit import sweep

    n = max(1, min(jobs or sweep.default_jobs(), len(dirs)))
    print(f"figures: {len(dirs)} experiments on {n} process{'es' if n != 1 else ''}")
    if n == 1:
        for d in dirs:
            plot_experiment(d)
        return
    Parallel(n_jobs=n, backend="loky")(delayed(plot_experiment)(d) for d in dirs)


def _cmd_experiments(args) -> int:
    """Validate every experiment file first, then run them in turn (sweeps, parts, post steps
    of :mod:`toolkit.suite`), then the figures and the report."""
    from toolkit import config, store, suite, sweep

    if not _check_choice("--scale", args.scale, SCALES) or not _check_backend(args):
        return 2
    if not args.dir.is_dir():
        _err(f"{args.dir}: no such directory of experiment files")
        return 2
    files = sorted(p for p in args.dir.glob("*.toml") if not p.name.startswith("_"))
    if not files:
        _err(f"{args.dir}: no experiment files (*.toml)")
        return 2
    opts = _exec_options(args)
    exps, bad = [], []
    for f in files:
        try:
            exps.append(config.load(f, scale=args.scale, max_runs=opts.max_runs))
        except config.ConfigError as e:
            bad.append(str(e))
    if bad:
        _err("\n".join(bad))
        return 2
    status = 0
    for exp in exps:
        try:
            res = suite.run(exp, opts)
        except (sweep.SweepStopped, store.DamagedResults) as e:
            _err(str(e))
            return 3
        except (store.IncompatibleResults, sweep.SweepError) as e:
            _err(str(e))
            return 2
        if not res.ok:
            status = 1
    plot_experiment = _lazy("toolkit.plots", "plot_experiment", "plotting")
    if plot_experiment is not None:
        _plot_all(plot_experiment, [args.results / exp.name for exp in exps], opts.jobs)
    write_report = _lazy("toolkit.report", "write_report", "the report")
    if write_report is not None:
        print(write_report(args.results))
    if plot_experiment is None or write_report is None:
        status = status or 2
    return status


COMMANDS = {
    "run": _cmd_run,
    "plot": _cmd_plot,
    "report": _cmd_report,
    "bench": _cmd_bench,
    "experiments": _cmd_experiments,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bptt`` and ``python -m toolkit``; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":  # everything after `bench` goes to benchmarks/run.py
        args.args = [*extra, *args.args]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        _err("interrupted; finished runs are stored, run the same command again to resume")
        return 130
    except BrokenPipeError:  # e.g. `bptt run x.toml --dry-run | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
