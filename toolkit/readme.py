"""The parameter cells of README.md's method and task tables, from the declarations.

``python -m toolkit.readme`` prints one row per method and task, ``| `name` | cell |``; the
cell is what the last column of the README's row must hold (tests/test_docs.py checks it).
"""

from __future__ import annotations

from toolkit.params import defaults_text


def readme_cells() -> dict[str, str]:
    """{method or task name: its parameter cell} for every registered method and task."""
    import toolkit.tasks
    from toolkit.train import METHODS

    cells = {m: defaults_text(METHODS[m].params) for m in METHODS}
    for name in toolkit.tasks.names():
        cells[name] = defaults_text(toolkit.tasks.get(name).PARAMS)
    return cells


if __name__ == "__main__":
    for name, cell in readme_cells().items():
        print(f"| `{name}` | {cell} |")
