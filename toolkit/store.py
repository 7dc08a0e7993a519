"""Results on disk: one file per finished run, consolidated Parquet tables and metadata.

Layout of an experiment's results directory (``results/<experiment>/`` unless ``--out``)::

    runs/<run_id>.json        one finished run (row + trace points + final/best theta),
    runs/<run_id>.error.json  written the moment it arrives, atomically (temporary file, then
                              os.replace); runs stored as errors are retried on a rerun
    runs/damaged/<name>.<UTC time>  run files found damaged, moved aside (never deleted)
    runs.parquet              one row per run (columns: :data:`RUN_COLUMNS` + ``grid.<key>``)
    traces.parquet            every run's trace points (run_id, method, task + trace columns)
    thetas.parquet            run_id, final_theta, best_theta (lists of float64)
    meta.json                 config as given and resolved, root seed, versions, git commit,
                              CPU, thread settings, start and end times, history of sessions
    .lock                     while a sweep writes: its pid, host, start time, command line

Run files. A run file is a JSON object: ``format`` (:data:`RUN_FORMAT`), ``run_id``,
``index``, ``row`` (the runs.parquet row), ``trace`` (columns of trace points, or null),
``final_theta``, ``best_theta`` and, last, ``checksum``: ``"sha256:<hex>"`` of the file's own
bytes with those 64 hex digits replaced by zeros (:func:`file_checksum`; hashing the bytes costs
next to nothing beside parsing them). Reading a file (:func:`load_run_file`) checks that it
parses, has :data:`REQUIRED_KEYS` and :data:`REQUIRED_ROW_KEYS`, that both run ids match the
file name, that the outcome is one of the Trace outcomes (``error`` exactly in ``.error.json``
files), that the trace columns have one length, and the checksum. Files of the first format
(``format`` 1, written before checksums) have none: they are accepted when they pass the other
checks, since results written by earlier versions exist; a format-2 file without one is
damaged. A damaged file is never used and never dropped silently: a sweep
(:func:`check_runs`, when it starts) names it in one warning line, moves it to
``runs/damaged/`` and runs it again; :func:`consolidate` raises :class:`DamagedResults` naming
every damaged file and writes no table.

The Parquet tables are rebuilt from the run files after every sweep (also after Ctrl-C), so
they always agree with what is stored; they are derived data, never the source of a merge
(:func:`toolkit.suite.merge_parts` rebuilds each part's tables from its run files). Timing
columns (:data:`TIMING_COLUMNS`) are the only columns that differ between two executions of the
same experiment.

The lock. A sweep writes to a directory only while holding ``.lock`` (:func:`acquire_lock`),
created atomically with the holder's pid, host, start time and command line, removed when the
sweep ends. A second writer is refused (:class:`ResultsLocked`, naming the holder). A lock left
by a process of this host that no longer runs (killed, or its pid now belongs to a younger
process) is taken over with a one-line note; a lock from another host is never taken over (the
message says which file to remove when that process is gone). The lock is re-entrant within a
process (a suite holds its directory while its sweeps run in it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from toolkit import records
from toolkit.train.trace import COLUMNS as _TRACE_COLUMNS
from toolkit.train.trace import OUTCOMES

#: thread-count variables the sweep sets to 1 in workers (recorded in meta.json)
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

RUNS_DIR = "runs"
RUNS_TABLE = "runs.parquet"
TRACES_TABLE = "traces.parquet"
THETAS_TABLE = "thetas.parquet"
META_FILE = "meta.json"
TUNING_FILE = "tuning.json"  # the tuning stage's protocol and choices (toolkit.tuning)
LOCK_FILE = ".lock"
DAMAGED_DIR = "damaged"
FORMAT = 1  # of meta.json
#: format of run files: 1 = no checksum (still read), 2 = with "checksum"
RUN_FORMAT = 2
#: keys every run file has (values may be null: trace and thetas of an error run)
REQUIRED_KEYS = ("run_id", "row", "trace", "final_theta", "best_theta")
REQUIRED_ROW_KEYS = ("run_id", "outcome", "task", "method")

#: columns of runs.parquet in order (then one ``grid.<key>`` column per grid key), their
#: dtypes and the timing columns: all derived from the run record (toolkit/records.py)
RUN_COLUMNS = records.columns()
INT_COLUMNS = records.columns("Int64")
FLOAT_COLUMNS = records.columns("float64")
#: trace columns: the Trace record's own
TRACE_COLUMNS = _TRACE_COLUMNS
#: columns that measure time and so differ between executions of the same run
#: (cpu_s: the CPU time of the run's thread, from building the task to the end of training)
TIMING_COLUMNS = records.columns(timing=True)
PACKAGES = (
    "numpy",
    "numba",
    "llvmlite",
    "deap",
    "joblib",
    "loky",
    "dask",
    "distributed",
    "pandas",
    "pyarrow",
    "tqdm",
    "matplotlib",
    "cloudpickle",
    "threadpoolctl",
)


class IncompatibleResults(ValueError):
    """The results directory holds results of a different configuration."""


class DamagedRunFile(ValueError):
    """One run file that cannot be used: ``path`` and ``reason``."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DamagedResults(RuntimeError):
    """Stored results that cannot be used as they are (damaged run files, planned runs missing
    from a merge); ``paths`` names the files or directories concerned."""

    def __init__(self, message: str, paths=()):
        self.paths = [Path(p) for p in paths]
        super().__init__(message)


class ResultsLocked(RuntimeError):
    """Another process is writing to the results directory (its lock file is held)."""


# ------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a
    partial one (temporary file in the same directory, fsync, os.replace)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json_atomic(path: Path, obj) -> None:
    text = json.dumps(obj, indent=1, default=str, allow_nan=True)
    write_bytes_atomic(path, text.encode("utf-8"))


def _write_parquet_atomic(df, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def run_file(out_dir, run_id: str, error: bool = False) -> Path:
    return Path(out_dir) / RUNS_DIR / (f"{run_id}.error.json" if error else f"{run_id}.json")


def stored_ids(out_dir) -> dict[str, str]:
    """{run_id: "ok" | "error"} for every run file under ``out_dir/runs``, by file name only
    (fast, unchecked: for progress polling; the sweep decides what to rerun with
    :func:`check_runs`, which reads and validates every file)."""
    d = Path(out_dir) / RUNS_DIR
    out: dict[str, str] = {}
    if not d.is_dir():
        return out
    for p in d.iterdir():
        n = p.name
        if n.startswith(".") or not n.endswith(".json"):
            continue
        if n.endswith(".error.json"):
            out.setdefault(n[: -len(".error.json")], "error")
        else:
            out[n[: -len(".json")]] = "ok"
    return out


_CHECKSUM_KEY = b'"checksum": "sha256:'
_BLANK = b"0" * 64


def file_checksum(data: bytes) -> str | None:
    """The sha256 (hex) of a run file's bytes with the hex digits of its own ``"checksum"``
    field replaced by zeros, or None if the file has no checksum field. (A JSON string cannot
    contain the field's text unescaped, so the last match is the field.)"""
    i = data.rfind(_CHECKSUM_KEY)
    if i < 0:
        return None
    j = i + len(_CHECKSUM_KEY)
    return hashlib.sha256(data[:j] + _BLANK + data[j + 64 :]).hexdigest()


def write_run(out_dir, record: dict) -> Path:
    """Store one run record (from :func:`toolkit.sweep.execute_run`) atomically, with the
    format number and, as its last field, the checksum of the file (:func:`file_checksum`)."""
    error = record["row"]["outcome"] == "error"
    path = run_file(out_dir, record["run_id"], error=error)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in record.items() if k not in ("format", "checksum")}
    body = {"format": RUN_FORMAT, **body, "checksum": "sha256:" + _BLANK.decode()}
    data = json.dumps(body, indent=1, default=str, allow_nan=True).encode("utf-8")
    j = data.rfind(_CHECKSUM_KEY) + len(_CHECKSUM_KEY)
    data = data[:j] + file_checksum(data).encode("ascii") + data[j + 64 :]
    write_bytes_atomic(path, data)
    if not error:
        with contextlib.suppress(FileNotFoundError):
            run_file(out_dir, record["run_id"], error=True).unlink()
    return path


def _check_record(rec, run_id: str, error: bool) -> str | None:
    """None if ``rec`` (a parsed run file named for ``run_id``) is a valid run record, else
    what is wrong with it."""
    if not isinstance(rec, dict):
        return f"not a JSON object but {type(rec).__name__}"
    fmt = rec.get("format")
    if fmt not in (1, RUN_FORMAT):
        return f"unknown format {fmt!r} (expected 1 or {RUN_FORMAT})"
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    if missing:
        return f"missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    if rec["run_id"] != run_id:
        return f"run_id {rec['run_id']!r} does not match the file name"
    row = rec["row"]
    if not isinstance(row, dict):
        return "row is not a JSON object"
    missing = [k for k in REQUIRED_ROW_KEYS if k not in row]
    if missing:
        return f"row: missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    if row["run_id"] != run_id:
        return f"row.run_id {row['run_id']!r} does not match the file name"
    if row["outcome"] not in OUTCOMES:
        return f"row.outcome {row['outcome']!r} is not one of {', '.join(OUTCOMES)}"
    if (row["outcome"] == "error") != error:
        return f"row.outcome {row['outcome']!r} in a {'.error' if error else ''}.json file"
    tr = rec["trace"]
    if tr is not None:
        if not isinstance(tr, dict) or not all(isinstance(v, list) for v in tr.values()):
            return "trace is not an object of columns (lists)"
        if len({len(v) for v in tr.values()}) > 1:
            return "trace columns differ in length"
    if "checksum" not in rec and fmt != 1:
        return f"no checksum (format {fmt} files carry one)"
    return None


def load_run_file(path, run_id: str | None = None) -> dict:
    """The checked record of one run file; raises :class:`DamagedRunFile` (with the path and
    the reason) when it cannot be read, does not parse, fails the schema check or the
    checksum. ``run_id``: expected id (default: from the file name)."""
    path = Path(path)
    error = path.name.endswith(".error.json")
    if run_id is None:
        run_id = path.name[: -len(".error.json")] if error else path.name[: -len(".json")]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise DamagedRunFile(path, f"unreadable ({type(e).__name__}: {e})") from None
    digest = file_checksum(data)
    try:
        rec = json.loads(data)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        why = f"not valid JSON, truncated? ({type(e).__name__}: {e})"
        raise DamagedRunFile(path, why) from None
    why = _check_record(rec, run_id, error)
    if why is None and "checksum" in rec and rec["checksum"] != f"sha256:{digest}":
        why = "checksum mismatch (the file changed after it was written)"
    if why is not None:
        raise DamagedRunFile(path, why)
    return rec


def read_run(out_dir, run_id: str) -> dict | None:
    """The stored, checked record of a run (the successful one if both exist), or None.
    Raises :class:`DamagedResults` when the file is damaged."""
    for error in (False, True):
        try:
            return load_run_file(run_file(out_dir, run_id, error=error), run_id)
        except FileNotFoundError:
            continue
        except DamagedRunFile as e:
            raise DamagedResults(str(e), [e.path]) from None
    return None


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def move_aside(path) -> Path:
    """Move a damaged run file to ``runs/damaged/<name>.<UTC time stamp>`` (never deleted)."""
    path = Path(path)
    d = path.parent / DAMAGED_DIR
    d.mkdir(exist_ok=True)
    dest = d / f"{path.name}.{_stamp()}"
    while dest.exists():  # the same microsecond: another writer moved the same name
        dest = d / f"{path.name}.{_stamp()}.{os.getpid()}"
    os.rename(path, dest)
    return dest


def check_runs(out_dir, run_ids=None, *, move: bool = True, echo=None) -> dict[str, str]:
    """{run_id: "ok" | "error"} of the runs among ``run_ids`` (None: every run file) whose
    stored file passes :func:`load_run_file`; what the sweep skips on a rerun.

    A damaged file is reported in one line through ``echo`` (its path and what is wrong) and,
    with ``move``, moved aside by :func:`move_aside`; its run counts as not stored (so it runs
    again). A damaged ``<id>.json`` beside a valid ``<id>.error.json`` gives "error" (retried).
    """
    d = Path(out_dir) / RUNS_DIR
    if not d.is_dir():
        return {}
    names = {n for n in os.listdir(d) if n.endswith(".json") and not n.startswith(".")}
    if run_ids is None:
        run_ids = sorted(stored_ids(out_dir))
    out: dict[str, str] = {}
    damaged: list[tuple[DamagedRunFile, Path | None]] = []
    for rid in run_ids:
        for error, status in ((False, "ok"), (True, "error")):
            name = f"{rid}.error.json" if error else f"{rid}.json"
            if name not in names:
                continue
            try:
                load_run_file(d / name, rid)
            except FileNotFoundError:  # removed meanwhile (a retried error run succeeded)
                continue
            except DamagedRunFile as e:
                dest = None
                if move:
                    try:
                        dest = move_aside(e.path)
                    except OSError as m:
                        if echo is not None:
                            echo(f"warning: cannot move {e.path} aside ({m})")
                damaged.append((e, dest))
                continue
            out[rid] = status
            break
    if echo is not None:
        for e, dest in damaged[:10]:
            where = (
                f"moved to {dest}"
                if dest is not None
                else ("left in place" if move else "would be moved aside")
            )
            echo(f"warning: damaged run file {e.path}: {e.reason}; {where}; its run runs again")
        if len(damaged) > 10:
            more = len(damaged) - 10
            echo(f"warning: ... and {more} more damaged run files (see {d / DAMAGED_DIR})")
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare(out_dir, *, force: bool = False) -> None:
    """Create the directory; with ``force`` discard stored runs and tables first. Removes
    temporary files left by writers that no longer exist."""
    out = Path(out_dir)
    runs = out / RUNS_DIR
    if force and out.exists():
        if runs.is_dir():
            shutil.rmtree(runs)
        for name in (RUNS_TABLE, TRACES_TABLE, THETAS_TABLE, META_FILE):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    runs.mkdir(parents=True, exist_ok=True)
    for d in (out, runs):
        for p in d.glob(".*.tmp"):
            try:
                pid = int(p.name.rsplit(".", 2)[-2])
            except (ValueError, IndexError):
                continue
            if not _pid_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


# ------------------------------------------------------------------------------------------
# the writer's lock
# ------------------------------------------------------------------------------------------
#: locks this process holds: resolved directory -> [depth, token] (re-entrant: a suite holds
#: its directory while its sweeps run in it)
_HELD: dict[str, list] = {}


def _process_start(pid: int) -> float | None:
    """Start time (epoch seconds) of a process on this machine, where /proc tells it."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _read_lock(path: Path) -> dict | None:
    """The lock file's content; None if it does not exist; {} if it cannot be parsed."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _lock_is_stale(info: dict, host: str) -> bool:
    """True when the lock's writer ran on this host and no longer runs (its pid is gone, or
    the pid now belongs to a process started after the lock was taken)."""
    if info.get("host") != host or not isinstance(info.get("pid"), int):
        return False
    pid = info["pid"]
    if pid == os.getpid():  # not in _HELD: a lock of an earlier life of this pid
        return True
    if not _pid_alive(pid):
        return True
    started = _process_start(pid)
    # a minute of slack for clock adjustments: a live writer is never taken for a dead one
    return started is not None and started > float(info.get("since_epoch", math.inf)) + 60.0


def _describe(info: dict) -> str:
    cmd = info.get("command")
    cmd = " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)
    return (
        f"pid {info.get('pid')} on host {info.get('host')} since {info.get('since')} "
        f"(command: {cmd})"
    )


def _create_lock(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` if it does not exist, atomically (a complete file
    linked into place; O_CREAT|O_EXCL where hard links are not supported)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here
            pass
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _take_over(path: Path, seen: dict) -> bool:
    """Move the stale lock ``seen`` out of the way; False if another process changed it."""
    aside = path.with_name(f".{path.name}.stale.{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    moved = _read_lock(aside)
    if moved != seen:  # a new lock appeared between reading and moving: put it back
        with contextlib.suppress(OSError):
            os.link(aside, path)
        aside.unlink()
        return False
    aside.unlink()
    return True


class ResultsLock:
    """The writer's lock of a results directory (see :func:`acquire_lock`)."""

    def __init__(self, path: Path, key: str):
        self.path, self._key = path, key

    def release(self) -> None:
        """Remove the lock file if this process holds it (and this was the outermost hold)."""
        held = _HELD.get(self._key)
        if held is None:
            return
        held[0] -= 1
        if held[0] > 0:
            return
        del _HELD[self._key]
        info = _read_lock(self.path)
        if info and info.get("token") == held[1]:
            self.path.unlink()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def acquire_lock(out_dir, *, echo=print) -> ResultsLock:
    """Take the writer's lock of ``out_dir``: the file ``out_dir/.lock`` (pid, host, start
    time, command line), created atomically. Re-entrant within a process.

    Raises :class:`ResultsLocked` naming the holder when another process holds it. A lock left
    by a process of this host that no longer runs is taken over (one line through ``echo``);
    a lock from another host is never taken over (this host cannot tell whether it still runs):
    the message says which file to remove if it is gone.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = str(out.resolve())
    path = out / LOCK_FILE
    if key in _HELD:
        _HELD[key][0] += 1
        return ResultsLock(path, key)
    host = platform.node() or "unknown"
    now = datetime.now(UTC)
    info = {
        "pid": os.getpid(),
        "host": host,
        "since": now.isoformat(timespec="seconds"),
        "since_epoch": now.timestamp(),
        "command": list(sys.argv),
        "token": os.urandom(8).hex(),
    }
    data = json.dumps(info, indent=1).encode("utf-8")
    for _ in range(5):
        if _create_lock(path, data):
            _HELD[key] = [1, info["token"]]
            return ResultsLock(path, key)
        other = _read_lock(path)
        if other is None:  # released meanwhile
            continue
        if not other:
            raise ResultsLocked(
                f"{out} is locked by an unreadable lock file {path}. If no other `bptt run` "
                f"writes to {out}, remove {path} and run the command again"
            )
        if _lock_is_stale(other, host):
            if _take_over(path, other):
                echo(
                    f"note: taking over the lock of {out} left by {_describe(other)}, which "
                    "no longer runs"
                )
            continue
        if other.get("host") != host:
            raise ResultsLocked(
                f"{out} is being written by {_describe(other)}; refusing to write beside it. "
                f"This machine ({host}) cannot tell whether that process still runs: if it is "
                f"gone, remove {path} and run the command again; or use --out DIR to write "
                "elsewhere"
            )
        raise ResultsLocked(
            f"{out} is being written by {_describe(other)}; refusing to write beside it. Wait "
            "for it to finish (or stop it), then run the command again to resume; or use "
            "--out DIR to write elsewhere"
        )
    raise ResultsLocked(f"{out}: could not take the lock {path} (it keeps changing)")


# ------------------------------------------------------------------------------------------
# compatibility and metadata
# ------------------------------------------------------------------------------------------
def load_meta(out_dir) -> dict | None:
    p = Path(out_dir) / META_FILE
    if not p.exists():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def _flat(d, prefix=""):
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def _differences(old: dict, new: dict, limit: int = 6) -> list[str]:
    skip = ("replicates", "run_configs", "toolkit_version")
    a = _flat({k: v for k, v in (old or {}).items() if k not in skip})
    b = _flat({k: v for k, v in (new or {}).items() if k not in skip})
    diffs = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<unset>") != b.get(k, "<unset>"):
            diffs.append(f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}")
    if not diffs:
        diffs.append(
            "the resolved run configurations (e.g. a default of a task or method, or "
            "the toolkit version)"
        )
    if len(diffs) > limit:
        diffs = [*diffs[:limit], f"... and {len(diffs) - limit} more"]
    return diffs


def check_compatible(out_dir, name: str, fingerprint: str, resolved: dict | None = None) -> None:
    """Raise :class:`IncompatibleResults` when ``out_dir`` holds results written by another
    experiment or another resolved configuration (the number of replicates may differ: more
    seeds extend a sweep). A directory without meta.json is accepted."""
    out = Path(out_dir)
    try:
        meta = load_meta(out)
    except (OSError, ValueError) as e:
        raise IncompatibleResults(
            f"{out} has an unreadable {META_FILE} ({e}); refusing to mix results. Use --out DIR "
            "to write elsewhere, or --force to discard the stored results and rerun everything"
        ) from None
    if meta is None:
        return
    if meta.get("experiment") != name:
        raise IncompatibleResults(
            f"{out} holds results of experiment '{meta.get('experiment')}', not '{name}'; "
            "refusing to mix them. Use --out DIR to write elsewhere, or --force to discard the "
            "stored results and rerun everything"
        )
    if meta.get("fingerprint") != fingerprint:
        diffs = _differences(meta.get("config_resolved", {}), resolved or {})
        raise IncompatibleResults(
            f"{out} holds results of experiment '{name}' from a different configuration "
            f"(written from {meta.get('config_file')}, scale {meta.get('scale')}, "
            f"{meta.get('start')}); refusing to mix them. It differs in:\n    "
            + "\n    ".join(diffs)
            + "\nUse --out DIR to write these results elsewhere, or --force to discard the stored "
            "results and rerun everything"
        )


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """Versions, git commit, CPU and platform of this process."""
    versions = {"python": sys.version.split()[0]}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    repo = Path(__file__).resolve().parent.parent
    commit = _git(["rev-parse", "HEAD"], repo)
    dirty = None
    if commit is not None:
        # the code's state: changes under results/ (this run's own output) do not count
        status = _git(
            ["status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            repo,
        )
        dirty = bool(status) if status is not None else None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "versions": versions,
        "git": {"commit": commit, "dirty": dirty},
        "cpu": {"model": cpu_model(), "count": os.cpu_count(), "available": affinity},
        "platform": platform.platform(),
    }


def new_meta(
    exp, *, backend: str, jobs: int, scheduler: str | None, registry: str, out_dir=None
) -> dict:
    """meta.json for a sweep session of ``exp`` (a :class:`toolkit.config.Experiment`); keeps
    the creation time and the history of earlier sessions from a compatible meta.json."""

    env = environment()
    old = None
    if out_dir is not None:
        with contextlib.suppress(OSError, ValueError):
            old = load_meta(out_dir)
        if old and old.get("fingerprint") != exp.fingerprint:
            old = None
    return {
        "format": FORMAT,
        "experiment": exp.name,
        "fingerprint": exp.fingerprint,
        "config_file": str(exp.path),
        "scale": exp.scale,
        "root_seed": exp.root_seed,
        "replicates": exp.replicates,
        "n_runs": len(exp.runs),
        "seeds": "per run: SeedSequence(root_seed, spawn_key=(sha256(run config)[:4 words], "
        "replicate)); see the seed column of runs.parquet",
        "config_given": exp.given,
        "config_resolved": exp.resolved,
        "toolkit_version": exp.resolved.get("toolkit_version"),
        "registry": registry,
        **env,
        "threads": {
            "backend": backend,
            "jobs": jobs,
            "scheduler": scheduler,
            "inner_max_num_threads": 1,
            "worker_env": {v: "1" for v in THREAD_VARS},
            "parent_env": {v: os.environ.get(v) for v in THREAD_VARS},
        },
        "command": list(sys.argv),
        "created": (old or {}).get("created") or _now(),
        "start": _now(),
        "end": None,
        "status": "running",
        "history": list((old or {}).get("history", [])),
    }


def write_meta(out_dir, meta: dict) -> None:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(out_dir) / META_FILE, meta)


def finish_meta(
    out_dir,
    meta: dict,
    *,
    status: str,
    executed: int,
    failed: int,
    stored_before: int,
    cpu_s: float = 0.0,
    wall_s: float | None = None,
) -> None:
    """Close a session: status, counts and a history entry. ``cpu_s``: CPU seconds of the runs
    executed in this session (the sum of their ``cpu_s``); ``wall_s``: the session's wall time
    (default: end - start, to the second)."""
    meta["end"] = _now()
    meta["status"] = status
    if wall_s is None:
        wall_s = (
            datetime.fromisoformat(meta["end"]) - datetime.fromisoformat(meta["start"])
        ).total_seconds()
    meta["counts"] = {
        "runs": meta.get("n_runs"),
        "stored_before": stored_before,
        "executed": executed,
        "failed": failed,
        "cpu_s": round(float(cpu_s), 3),
        "wall_s": round(float(wall_s), 3),
    }
    meta["history"].append(
        {
            "start": meta["start"],
            "end": meta["end"],
            "status": status,
            "executed": executed,
            "failed": failed,
            "cpu_s": round(float(cpu_s), 3),
            "wall_s": round(float(wall_s), 3),
            "backend": meta["threads"]["backend"],
            "jobs": meta["threads"]["jobs"],
            # the code that executed this session's runs (meta's own "git" is the last session's)
            "git": dict(meta.get("git") or {}),
        }
    )
    write_meta(out_dir, meta)


# ------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------
def _runs_frame(rows: list[dict]):
    import pandas as pd

    extra = []
    for r in rows:
        for k in r:
            if k not in RUN_COLUMNS and k not in extra:
                extra.append(k)
    df = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *extra])
    for c in INT_COLUMNS:
        df[c] = pd.array(
            [
                None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
                for v in df[c]
            ],
            dtype="Int64",
        )
    for c in FLOAT_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in RUN_COLUMNS:
        if c not in INT_COLUMNS and c not in FLOAT_COLUMNS:
            df[c] = df[c].astype("object").where(df[c].notna(), None)
    return df


def consolidate(out_dir, run_ids: list[str] | None = None):
    """Rebuild runs.parquet, traces.parquet and thetas.parquet from the run files.

    ``run_ids``: the runs to include, in this order (those without a file are left out: not
    run yet); None: every stored run, sorted by (experiment, index of the run in its plan, run
    id). Every file is checked (:func:`load_run_file`); if any is damaged, raises
    :class:`DamagedResults` naming every damaged file, and writes no table. Returns (runs,
    traces) DataFrames.
    """
    import pandas as pd

    out = Path(out_dir)
    ids = run_ids if run_ids is not None else sorted(stored_ids(out))
    records, damaged = [], []
    for i in ids:
        try:
            r = read_run(out, i)
        except DamagedResults as e:
            damaged.append(e)
            continue
        if r is not None:
            records.append(r)
    if damaged:
        lines = [str(e) for e in damaged[:10]]
        if len(damaged) > 10:
            lines.append(f"... and {len(damaged) - 10} more")
        raise DamagedResults(
            f"{len(damaged)} damaged run file{'s' if len(damaged) != 1 else ''} in {out}; "
            "the tables were not rebuilt:\n    "
            + "\n    ".join(lines)
            + "\nRun the sweep again: it moves damaged files to "
            f"{out / RUNS_DIR / DAMAGED_DIR} and executes their runs again",
            [p for e in damaged for p in e.paths],
        )
    if run_ids is None:
        records.sort(key=lambda r: (r["row"].get("experiment", ""), r.get("index", 0), r["run_id"]))
    rows = [r["row"] for r in records]
    runs = _runs_frame(rows)
    frames = []
    for r in records:
        tr = r.get("trace")
        if not tr:
            continue
        f = pd.DataFrame(
            {c: pd.to_numeric(pd.Series(tr[c], dtype="object"), errors="coerce") for c in tr}
        )
        f.insert(0, "task", r["row"]["task"])
        f.insert(0, "method", r["row"]["method"])
        f.insert(0, "run_id", r["run_id"])
        frames.append(f)
    if frames:
        traces = pd.concat(frames, ignore_index=True)
    else:
        traces = pd.DataFrame(
            {c: pd.Series(dtype="float64") for c in ("run_id", "method", "task", *TRACE_COLUMNS)}
        )
    for c in ("evals", "fwd_steps", "grad_steps"):
        if c in traces:
            traces[c] = traces[c].astype("int64")
    thetas = pd.DataFrame(
        {
            "run_id": [r["run_id"] for r in records],
            "final_theta": [r.get("final_theta") for r in records],
            "best_theta": [r.get("best_theta") for r in records],
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    _write_parquet_atomic(runs, out / RUNS_TABLE)
    _write_parquet_atomic(traces, out / TRACES_TABLE)
    _write_parquet_atomic(thetas, out / THETAS_TABLE)
    return runs, traces


def load_runs(out_dir):
    """runs.parquet of an experiment's results directory as a DataFrame."""
    import pandas as pd

    return pd.read_parquet(Path(out_dir) / RUNS_TABLE)


def load_traces(out_dir):
    import pandas as pd

    return pd.read_parquet(Path(out_dir) / TRACES_TABLE)


def load_thetas(out_dir):
    import pandas as pd

    return pd.read_parquet(Path(out_dir) / THETAS_TABLE)


# ------------------------------------------------------------------------------------------
# the results reader
# ------------------------------------------------------------------------------------------
#: tables every results directory may hold; any other ``*.parquet`` is an extra table
CORE_TABLES = ("runs", "traces", "thetas")
FIGURES_DIR = "figures"


@dataclass
class Results:
    """What one results directory holds, read by :func:`read_results` (None where a file is
    missing or unreadable; what could not be read is listed in ``problems``).

    ``runs``: runs.parquet with the run record's columns under their current names
    (:func:`toolkit.records.normalise`); ``traces``: traces.parquet; ``tables``: every other
    ``<stem>.parquet`` by stem (gradient_fidelity, parallel, the landscape tables, ...);
    ``figures``: the stems of ``figures/*.png``, sorted; ``tuning``: tuning.json (the tuning
    stage's protocol and choices, :mod:`toolkit.tuning`); ``cache``: memo for analyses of these
    results (toolkit.claims)."""

    name: str
    path: Path
    meta: dict | None = None
    runs: object = None
    traces: object = None
    tables: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)
    tuning: dict | None = None
    problems: list = field(default_factory=list)
    cache: dict = field(default_factory=dict)

    def _meta(self, key) -> dict:
        v = (self.meta or {}).get(key)
        return v if isinstance(v, dict) else {}

    @property
    def config(self) -> dict:
        """The experiment's resolved config (meta.json ``config_resolved``)."""
        return self._meta("config_resolved")

    @property
    def config_given(self) -> dict:
        """The experiment file as given (meta.json ``config_given``)."""
        return self._meta("config_given")

    @property
    def report(self) -> dict:
        """The experiment file's ``[report]`` table (title, description, figure captions,
        published numbers), as stored in meta.json; {} when absent."""
        r = self.config_given.get("report")
        return r if isinstance(r, dict) else {}

    @property
    def experiment(self) -> str:
        """The experiment's name as recorded (meta.json), else the directory's name."""
        return str((self.meta or {}).get("experiment") or self.name)

    @property
    def thetas(self):
        """thetas.parquet (read on first use; None when missing)."""
        if "thetas" not in self.cache:
            self.cache["thetas"] = _read_table(self.path / THETAS_TABLE, self.problems)
        return self.cache["thetas"]

    @property
    def target_loss(self) -> float | None:
        """The experiment's loss target (first ``target_loss`` in meta.json), if positive."""
        t = _find_key(self.meta or {}, "target_loss")
        return float(t) if isinstance(t, int | float) and t > 0 else None


def _find_key(obj, key):
    """First value stored under ``key`` anywhere in a nested dict/list (depth-first)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for v in obj:
            r = _find_key(v, key)
            if r is not None:
                return r
    return None


def _read_table(path: Path, problems: list):
    import pandas as pd

    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path).reset_index(drop=True)
    except Exception as e:
        problems.append(f"`{path.name}` could not be read ({type(e).__name__})")
        return None


def has_results(d: Path) -> bool:
    """Whether directory ``d`` holds (part of) an experiment's results."""
    d = Path(d)
    return d.is_dir() and (
        (d / META_FILE).is_file()
        or any(d.glob("*.parquet"))
        or (d / FIGURES_DIR).is_dir()
        or (d / RUNS_DIR).is_dir()
    )


def read_results(path) -> Results:
    """Read a results directory (meta.json, runs/traces tables, extra tables, figure stems)
    without ever raising for missing or unreadable files: what could not be read, or lacks the
    columns every reader needs, is left None and named in ``problems``. The one reader of
    results directories (report, plots, suite post steps)."""
    d = Path(path)
    res = Results(name=d.name, path=d)
    mp = d / META_FILE
    if mp.is_file():
        try:
            meta = json.loads(mp.read_text(encoding="utf-8"))
            res.meta = meta if isinstance(meta, dict) else None
            if res.meta is None:
                res.problems.append("`meta.json` does not hold a JSON object")
        except (OSError, ValueError) as e:
            res.problems.append(f"`meta.json` could not be read ({type(e).__name__})")
    res.runs = _read_table(d / RUNS_TABLE, res.problems)
    res.traces = _read_table(d / TRACES_TABLE, res.problems)
    if res.runs is not None:
        missing = sorted({"task", "method", "outcome", "run_id"} - set(res.runs.columns))
        if missing:
            res.problems.append(f"`runs.parquet` lacks column(s) {', '.join(missing)}")
            res.runs = None
        else:
            res.runs = records.normalise(res.runs)
    if res.traces is not None and not {"run_id", "evals", "best_loss"} <= set(res.traces):
        res.problems.append("`traces.parquet` lacks the trace columns")
        res.traces = None
    for p in sorted(d.glob("*.parquet")):
        if p.stem not in CORE_TABLES:
            t = _read_table(p, res.problems)
            if t is not None:
                res.tables[p.stem] = t
    tp = d / TUNING_FILE
    if tp.is_file():
        try:
            t = json.loads(tp.read_text(encoding="utf-8"))
            if isinstance(t, dict) and isinstance(t.get("choices"), list):
                res.tuning = t
            else:
                res.problems.append(f"`{TUNING_FILE}` holds no list of choices")
        except (OSError, ValueError) as e:
            res.problems.append(f"`{TUNING_FILE}` could not be read ({type(e).__name__})")
    fig_dir = d / FIGURES_DIR
    if fig_dir.is_dir():
        res.figures = sorted(p.stem for p in fig_dir.glob("*.png"))
    return res


def non_timing(df):
    """``df`` without the timing columns (what must be identical across executions)."""
    return df.drop(columns=[c for c in TIMING_COLUMNS if c in df.columns])
