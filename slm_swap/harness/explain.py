"""How a failed row reads in pytest's output: prompt, gold, output and the failing checks (an agent task's:
`slm_swap.tracks.agent.run.explain`)."""

from __future__ import annotations

from slm_swap.backends.api import Answer
from slm_swap.data.rows import Row
from slm_swap.scoring.scorers import RowResult


def explain_failure(row: Row, answer: Answer, result: RowResult) -> str:
    verdicts = "  ".join(f"{name}={'ok' if ok else 'FAIL'}" for name, ok in result.flags.items())
    cause = result.failure.value if result.failure else "none"
    lines = [
        f"{row.track} row {row.id} failed: {cause}" + (f" ({result.detail})" if result.detail else ""),
        f"checks: {verdicts}",
    ]
    if answer.error:
        lines.append(f"model error [{answer.error_class or 'unknown'}]: {answer.error}")
    if answer.finish_reason == "content_filter":
        lines.append("note: the reply was cut by a content filter (finish_reason=content_filter)")
    lines += ["--- prompt ---", row.prompt, "--- gold ---", row.completion, "--- output ---"]
    lines.append("<no output>" if answer.text is None else answer.text)
    return "\n".join(lines)
