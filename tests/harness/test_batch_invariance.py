"""`--check-batch-invariance K`: rows generated again one at a time, their text and flag flips recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness_support import REPO, make_project

from slm_swap import layout
from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.data.rows import Row, load_rows
from slm_swap.formats.toolcall import format_tool_call
from slm_swap.harness.invariance import choose_check_rows, compare_alone, summary_line
from slm_swap.scoring.outcomes import RowRecord
from slm_swap.tracks.rows.definitions import TOOLCALL

CHECKPOINT_NAME = "smollm2-135m-instruct"


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [
        (10, 3, [0, 3, 6]),  # evenly spaced, starting at the first row
        (10, 10, list(range(10))),  # K = n: every row
        (4, 9, [0, 1, 2, 3]),  # K > n: every row once, none twice
        (5, 1, [0]),  # one row: the first
        (0, 3, []),  # no rows selected: nothing to check
    ],
)
def test_check_rows_are_evenly_spaced_and_never_repeat(n: int, k: int, expected: list[int]) -> None:
    assert choose_check_rows(list(range(n)), k) == expected


def record(row_id: str, output: str | None) -> RowRecord:
    result = TOOLCALL.score(output, GOLD)
    return RowRecord(id=row_id, track="toolcall", output=output, flags=dict(result.flags), passed=result.passed)


GOLD = format_tool_call("f", {"a": 1})


def test_a_text_flip_that_keeps_the_verdict_is_a_text_flip_only() -> None:
    rows = {i: Row(i, n, "toolcall", "p", GOLD) for n, i in enumerate(["test-0000", "test-0001", "test-0002"])}
    records = {
        "test-0000": record("test-0000", GOLD),
        "test-0001": record("test-0001", GOLD),
        "test-0002": record("test-0002", "no call"),
    }
    alone = {
        "test-0000": GOLD,  # same text
        "test-0001": GOLD + " ",  # other text, same flags: only a text flip
        "test-0002": format_tool_call("f", {"a": 2}),  # valid and named alone, not batched
    }
    block = compare_alone("toolcall", records, alone, rows)
    assert block["rows_compared"] == 3 and block["text_flips"] == 2
    assert block["text_flipped_rows"] == ["test-0001", "test-0002"]
    assert block["rows_with_flag_flips"] == 1 and block["flag_flipped_rows"] == ["test-0002"]
    assert block["flag_flips"] == {"valid_call": 1, "name_match": 1, "args_exact": 0}


@pytest.mark.slow
def test_recorded_flips_match_a_direct_comparison(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, langfuse_env) -> None:
    from slm_swap.backends.local_slm import LocalSLM

    checkpoint = ensure_checkpoint(CHECKPOINT_NAME, REPO / "slm_swap" / "models" / CHECKPOINT_NAME)
    make_project(pytester, n=6)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("SLM_MODEL_PATH", str(Path(checkpoint)))
    args = ["evals", "-k", "toolcall", "--model=slm", "--batch-size=6", "--max-new-tokens=24", "--no-cache", "-p", "no:randomly"]
    result = pytester.runpytest_subprocess(*args, "--check-batch-invariance=3", timeout=600)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stderr.str()[-2000:]
    eval_dir = pytester.path / "slm_swap" / "05_eval"
    block = json.loads((eval_dir / "toolcall_slm.json").read_text())["batch_invariance"]
    assert block["k"] == 3 and block["rows"] == ["test-0000", "test-0002", "test-0004"] and block["engine"] == "static"
    assert summary_line(block) in result.stdout.str()

    # the same rows generated alone here, scored here, compared with the run's own batched predictions
    batched = {line["id"]: line for line in map(json.loads, layout.predictions_path(eval_dir, "toolcall", "slm").read_text().splitlines())}
    rows = [
        r for r in load_rows(pytester.path / "slm_swap" / "02_dataset" / "toolcall" / "test.jsonl", "toolcall") if r.id in block["rows"]
    ]
    slm = LocalSLM(checkpoint, track="toolcall", max_new_tokens=24, batch_size=1, device="cpu")
    alone = slm.generate_rows(rows)
    slm.close()
    texts = [r.id for r in rows if alone[r.id].text != batched[r.id]["output"]]
    flags = {check: 0 for check in TOOLCALL.checks}
    for row in rows:
        alone_flags = TOOLCALL.score(alone[row.id].text, row.completion).flags
        for check in TOOLCALL.checks:
            flags[check] += alone_flags[check] != batched[row.id]["flags"][check]
    assert block["text_flipped_rows"] == texts and block["text_flips"] == len(texts)
    assert block["flag_flips"] == flags


def test_the_check_needs_the_slm(pytester: pytest.Pytester) -> None:
    make_project(pytester, n=2)
    result = pytester.runpytest("evals", "--model=replay", "--predictions=p.jsonl", "--check-batch-invariance=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--check-batch-invariance needs --model=slm" in result.stderr.str()
