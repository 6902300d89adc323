"""The hosted model's progress line comes at any connection count: `--max-connections 1` asks one row at a time
(no `ConcurrentModel`), and still says how many rows are answered and which errors they ended in."""

from __future__ import annotations


def test_hosted_rows_at_one_connection_report_as_they_are_answered(bench) -> None:
    b = bench(6)
    b.serve(per_prompt={b.prompts[2]: ["content_filter_400"]})
    result = b.run("--max-connections", "1")
    result.stderr.fnmatch_lines(
        ["azure toolcall: asking for 6 rows", "azure toolcall: 6/6 rows answered, * rows/s, * s, errors content_filter=1"]
    )
