"""The README, `bptt experiments --help` and the committed report agree on measured times."""

import re
from pathlib import Path

from toolkit import cli

ROOT = Path(__file__).resolve().parent.parent


def test_default_scale_time_agrees_in_readme_help_and_report():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"`make experiments` \(default\) took (\d+) minutes", readme)
    assert m, "README must state the default scale's measured time"
    total = int(m.group(1))
    sweeps = re.search(r"([\d.]+) min in the sweeps,\s+([\d.]+) min of CPU time", readme)
    assert sweeps, "README must state the sweeps' wall and CPU time"

    sub = cli.build_parser()._subparsers._group_actions[0].choices["experiments"]
    help_text = " ".join(a.help or "" for a in sub._actions)
    assert f"{total} minutes on 2 cores" in help_text

    report = (ROOT / "results" / "REPORT.md").read_text(encoding="utf-8")
    r = re.search(r"took ([\d.]+) min of wall time and ([\d.]+) min of CPU time", report)
    assert r, "the committed report must say how long its sweeps took"
    assert (r.group(1), r.group(2)) == sweeps.groups()
    assert float(r.group(1)) <= total  # the sweeps are part of the whole command


def test_readme_tables_list_every_method_and_task_with_declared_defaults():
    """README.md's method and task tables have one row per registered method and task, and the
    row's last cell lists the declared parameters with their defaults (the cell printed by
    ``python -m toolkit.readme``): a new parameter or a changed default shows up here."""
    from toolkit.readme import readme_cells

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tables = re.findall(r"^(\| (?:method|task) \|.*\n(?:\|.*\n)+)", readme, flags=re.M)
    lines = [r for t in tables for r in t.splitlines()]
    cells = readme_cells()
    from toolkit import tasks
    from toolkit.train import METHODS

    assert set(cells) == set(METHODS) | set(tasks.names())
    for name, cell in cells.items():
        rows = [r for r in lines if r.startswith(f"| `{name}` |")]
        assert len(rows) == 1, f"README.md needs one table row for `{name}`, has {len(rows)}"
        last = rows[0].rstrip(" |").rsplit(" | ", 1)[-1]
        assert last == cell, f"README.md's row of `{name}` should end with: {cell}"
