"""The committed report is what the committed tables and the current code render."""

from pathlib import Path

from toolkit import report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def test_committed_report_renders_from_committed_tables():
    """`bptt report` on a fresh clone gives results/REPORT.md byte for byte, running nothing:
    a change to the analysis or the report must come with the re-rendered REPORT.md."""
    committed = (RESULTS / "REPORT.md").read_text(encoding="utf-8")
    assert report.render_report(RESULTS) == committed
