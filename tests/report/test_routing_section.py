"""The report's "Partial swaps" section, from the route files tools/route.py wrote for a pair whose answers are known."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from route_support import known_pair

from slm_swap.report.build import write_report
from slm_swap.report.routing import routing_section

REPO = Path(__file__).resolve().parents[2]


def routed_folder(tmp_path: Path) -> Path:
    known_pair(tmp_path)
    cmd = [sys.executable, str(REPO / "tools" / "route.py"), "--tracks", "toolcall", "--eval-dir", str(tmp_path)]
    result = subprocess.run([*cmd, "--dataset-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_the_section_shows_share_rates_gap_precision_and_cost(tmp_path, langfuse_env):
    lines = routing_section(routed_folder(tmp_path), ["structured", "toolcall"])
    assert lines[0] == "## Partial swaps"
    assert lines[4] == (
        "**toolcall, SLM** (40 rows): inconclusive on toolcall: the SLM would serve 62 % of traffic, but the rows cannot tell "
        "whether the routed system is within delta 0.02 of hosted-only on valid\\_call\\_rate, name\\_match\\_rate, "
        "args\\_exact\\_rate; about 491 rows would resolve it \\(80 % power\\)."
    )
    # rows 0-24 the SLM's (20 right), 25-39 the hosted model's (25-29 and 37-39 right): valid calls stay as hosted-only's
    assert lines[6:12] == [
        "| system | SLM serves | valid_call_rate | name_match_rate | args_exact_rate |",
        "|---|---|---|---|---|",
        "| hosted only | 0 % | 0.825 [0.680, 0.912] | 0.825 [0.680, 0.912] | 0.825 [0.680, 0.912] |",
        "| SLM only | 100 % | 0.750 [0.598, 0.858] | 0.750 [0.598, 0.858] | 0.625 [0.470, 0.758] |",
        "| routed | 62 % | 0.825 [0.680, 0.912] | 0.825 [0.680, 0.912] | 0.700 [0.546, 0.819] |",
        "| gap hosted only - routed |  | +0.000 [-0.066, +0.066] | +0.000 [-0.066, +0.066] | +0.125 [+0.001, +0.237] |",
    ]
    assert lines[13] == (
        "Validator precision 0.800 (accepted SLM answers that are exactly right). Rejections: missing\\_required 5, no\\_tool\\_call 10; "
        "they cost 15 hosted calls, 5 of them for an SLM answer that was right (2 rows lost a pass, 5 gained one)."
    )


def test_no_route_file_no_section(tmp_path):
    assert routing_section(tmp_path, ["structured", "toolcall"]) == []


def test_the_report_carries_the_section_after_the_tracks(tmp_path, langfuse_env):
    folder = routed_folder(tmp_path)
    write_report(folder, folder / "ft", None, folder / "report.md", folder / "report.png", tracks=("toolcall",))
    text = (folder / "report.md").read_text()
    assert "## Partial swaps" in text and text.index("## Partial swaps") > text.index("## Track ` toolcall `")
