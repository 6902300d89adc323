"""The report: numbers from the metric files, failure examples from the predictions, "not run" for what is missing.

Fixtures are written with the harness's own record, summary and decision code, so the
files have exactly the format a real run leaves behind.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from matplotlib.container import ErrorbarContainer
from PIL import Image

from slm_swap.backends.api import Answer
from slm_swap.data.rows import load_rows
from slm_swap.decision.run import DecisionRequest, decide_all
from slm_swap.files import sha256_file, write_json_atomic, write_jsonl_atomic
from slm_swap.formats.toolcall import format_structured_call, format_tool_call
from slm_swap.harness.records import make_row_record, prediction_lines, summarize
from slm_swap.prompts import build_prompt
from slm_swap.report.build import chart_track, write_report
from slm_swap.report.chart import chart_figure
from slm_swap.report.inputs import ReportInputError, RunNames, load_decision, load_track
from slm_swap.report.markdown import code, escape
from slm_swap.tracks.rows.definitions import get_track
from tools.report import build_parser, main

N = 10
HOSTED = {
    "name": "azure",
    "deployment": "gpt-4o-mini",
    "endpoint": "https://example.openai.azure.com/openai/deployments/gpt-4o-mini",
    "timeout_s": 60,
}
SLM = {"model_path": "slm_swap/models/gemma3-270m", "base": "gemma3-270m-q4", "adapter": None, "quantization": {"method": "nf4"}}


def gold(track: str, i: int) -> str:
    args = {"city": f"City {i}", "days": i}
    return format_tool_call(f"tool_{i % 3}", args) if track == "toolcall" else format_structured_call(f"tool_{i % 3}", args)


def write_dataset(root: Path, track: str) -> Path:
    tools = [{"name": "tool_0", "description": "a tool", "parameters": {"type": "dict", "properties": {}}}]
    rows = [{"prompt": build_prompt(track, f"request number {i} | with `ticks`", tools), "completion": gold(track, i)} for i in range(N)]
    path = root / "02_dataset" / track / "test.jsonl"
    write_jsonl_atomic(path, rows)
    return path


def write_run(
    eval_dir: Path, dataset: Path, track: str, model: str, tag: str | None, outputs: dict[int, str | None], langfuse: bool = True
) -> Path:
    """A metric file and predictions: gold answers except `outputs` (None is a failed model call)."""
    records = []
    for row in load_rows(dataset, track):
        text = outputs.get(row.index, row.completion)
        answer = (
            Answer(text=text, latency_s=0.5)
            if text is not None
            else Answer(text=None, error="read timed out after 60 s", error_class="timeout")
        )
        records.append(make_row_record(row, answer, get_track(track).score(answer.text, row.completion)))
    stem = f"{track}_{model}" + (f"_{tag}" if tag else "")
    doc = {
        "schema": 1,
        "track": track,
        "model": model,
        "tag": tag,
        "split": "test",
        **summarize(track, records),
        "dataset": {"path": str(dataset), "sha256": sha256_file(dataset)},
        "model_description": HOSTED if model == "azure" else {**SLM, "adapter": "slm_swap/04_ft/adapter" if tag else None},
        "started_at": "2025-01-01T00:00:00.000+00:00",
        "finished_at": "2025-01-01T00:01:00.000+00:00",
        "duration_s": 61.5 if model == "azure" else 7.25,
        "pytest_args": [],
        "predictions_path": str(eval_dir / f"{stem}.predictions.jsonl"),
    }
    if langfuse:
        doc["langfuse"] = {"trace_id": f"trace-{stem}", "trace_url": f"https://cloud.langfuse.com/project/p/traces/trace-{stem}"}
    write_jsonl_atomic(eval_dir / f"{stem}.predictions.jsonl", prediction_lines(records))
    write_json_atomic(eval_dir / f"{stem}.json", doc)
    return eval_dir / f"{stem}.json"


def wrong_args(track: str, i: int) -> str:
    return gold(track, i).replace('"days":', '"day":')


def slm_outputs(track: str) -> dict[int, str | None]:
    if track == "structured":
        return {
            0: f"```json\n{gold(track, 0)}\n```",
            1: f"```json\n{gold(track, 1)}\n```",
            2: f"Sure! {gold(track, 2)}",
            3: wrong_args(track, 3),
            4: gold(track, 4).replace("tool_1", "tool_9"),
            5: None,
            6: "{not json",
        }
    return {
        0: "I cannot call tools.",
        1: "no call",
        2: wrong_args(track, 2),
        3: gold(track, 3).replace("tool_0", "tool_9"),
        4: None,
        5: gold(track, 5) + gold(track, 5),
    }


def write_decision(eval_dir: Path, tracks: tuple[str, ...] = ("structured", "toolcall"), delta: float = 0.05) -> dict:
    pairs = {t: (eval_dir / f"{t}_azure.json", eval_dir / f"{t}_slm.json", eval_dir / f"{t}_slm_ft.json") for t in tracks}
    documents = decide_all(DecisionRequest(pairs=pairs, delta=delta, output=eval_dir / "decision.json"))
    write_json_atomic(eval_dir / "decision.json", {"delta": delta, "tracks": documents})
    return documents


def edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    write_json_atomic(path, doc)


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    """Hosted and SLM runs on both tracks, a decision, and an adapter run plus manifest for structured only."""
    eval_dir, ft_dir = tmp_path / "05_eval", tmp_path / "04_ft"
    datasets = {track: write_dataset(tmp_path, track) for track in ("structured", "toolcall")}
    for track, dataset in datasets.items():
        write_run(eval_dir, dataset, track, "azure", None, {7: wrong_args(track, 7)})
        write_run(eval_dir, dataset, track, "slm", None, slm_outputs(track))
    # the adapter fixes every row but 0, which the SLM also failed: its paired gain differs from the hosted - SLM gap
    write_run(eval_dir, datasets["structured"], "structured", "slm", "ft", {0: wrong_args("structured", 0)})
    write_decision(eval_dir)
    write_json_atomic(
        ft_dir / "adapter_structured" / "training_manifest.json",
        {
            "base_model": "gemma3-270m-q4",
            "train_rows": 1000,
            "final_losses": {"train_loss": 0.41, "val_loss": 0.52},
            "dataset_sha256": {"train": "ab" * 32},
            "langfuse": {"trace_id": "t", "trace_url": "https://cloud.langfuse.com/project/p/traces/train"},
            "training": {"optimizer_steps": 40, "rows_trained": 317, "tokens_per_s": 7971.94, "final_train_loss": 0.40168},
            "validation": {
                "loss": 0.33039,
                "rows": 100,
                "curve": [{"step": step, "val_loss": 1.0 / step} for step in range(2, 42, 2)],
            },
        },
    )
    return {"root": tmp_path, "eval": eval_dir, "ft": ft_dir, "md": eval_dir / "report.md", "png": eval_dir / "report.png"}


def build(project: dict[str, Path], step_times: dict[str, float] | None = None) -> str:
    write_report(project["eval"], project["ft"], step_times, project["md"], project["png"])
    return project["md"].read_text(encoding="utf-8")


def section(markdown: str, track: str) -> str:
    return markdown.split(f"## Track ` {track} `")[1].split("## Track")[0]


def code_spans(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    return [child.content for token in tokens if token.children for child in token.children if child.type == "code_inline"]


def metric_row(markdown: str, metric: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| ` {metric} ` |"))


def test_metric_table_shows_each_run_with_intervals_and_paired_gaps(project: dict[str, Path]) -> None:
    structured = section(build(project), "structured")
    # hosted 9/10, SLM 3/10 exact (rows 0-6 fail), adapter 9/10 (row 0 fails); Wilson intervals of 9/10 and 3/10;
    # hosted - SLM on the same rows: 7 rows only hosted passes, 1 only the SLM (Bonett & Price, exact McNemar);
    # adapter - SLM: 6 rows only the adapter passes, none only the SLM
    assert metric_row(structured, "exact_match_rate") == (
        "| ` exact_match_rate ` | 0.900 [0.596, 0.982] | 0.300 [0.108, 0.603] | 0.900 [0.596, 0.982] "
        "| +0.600 [+0.068, +0.932], p=0.070 | +0.000 | +0.600 [+0.135, +0.865], p=0.031 |"
    )
    # json_valid: SLM fails rows 0, 1, 2 (not pure JSON), 5 (no answer), 6 (broken JSON); 10/10 is [0.723, 1.000]
    assert metric_row(structured, "json_valid_rate") == (
        "| ` json_valid_rate ` | 1.000 [0.723, 1.000] | 0.500 [0.237, 0.763] | 1.000 [0.723, 1.000] "
        "| +0.500 [+0.054, +0.779], p=0.062 | +0.000 | +0.500 [+0.054, +0.779], p=0.062 |"
    )


def test_missing_adapter_run_reads_not_run(project: dict[str, Path]) -> None:
    toolcall = section(build(project), "toolcall")
    # SLM: rows 0, 1 (no call), 2 (arguments), 4 (no answer), 5 (two calls) miss; row 3's wrong name keeps its arguments
    assert metric_row(toolcall, "args_exact_rate") == (
        "| ` args_exact_rate ` | 0.900 [0.596, 0.982] | 0.500 [0.237, 0.763] | not run | +0.400 [-0.088, +0.755], p=0.219 |  |  |"
    )
    assert "After fine-tuning: not run (no SLM + adapter metric file)." in toolcall
    assert "Training manifest: not run." in toolcall


def test_training_run_shows_its_size_speed_and_losses(project: dict[str, Path]) -> None:
    structured = section(build(project), "structured")
    assert "- training: 40 steps, 317 rows, 7,972 tokens/s, final train loss 0.4017" in structured.splitlines()
    validation = next(line for line in structured.splitlines() if line.startswith("- validation loss:"))
    # 20 evaluations: the first six and the last six are shown, the eight between are counted
    assert validation == (
        "- validation loss: 0.3304 on 100 val rows; by step: step 2: 0.5000, step 4: 0.2500, step 6: 0.1667, "
        "step 8: 0.1250, step 10: 0.1000, step 12: 0.0833, ... 8 more, step 30: 0.0333, step 32: 0.0312, "
        "step 34: 0.0294, step 36: 0.0278, step 38: 0.0263, step 40: 0.0250"
    )


def test_verdict_heads_the_track_then_the_decision_with_its_rule(project: dict[str, Path]) -> None:
    markdown = build(project)
    structured = section(markdown, "structured")
    entry = json.loads((project["eval"] / "decision.json").read_text(encoding="utf-8"))["tracks"]["structured"]
    # json_valid's gap interval [+0.054, +0.779] lies wholly above delta 0.05
    assert entry["verdict"] == "slm_trails" and entry["fine_tune"] == 1
    headline = f"Verdict: **SLM trails** \u2014 {escape(entry['verdict_text'].removeprefix('slm_trails: '))}"
    assert structured.startswith(f"\n\n{headline}\n\nDecision: fine\\_tune = 1 (fine-tune the SLM), set by the {entry['rule']} rule")
    assert structured.index(headline) < structured.index("### Core metrics")
    assert "keep the SLM as is" not in structured and "Decision: **fine-tune**" not in structured
    assert "Rows needed" not in structured  # only an inconclusive verdict asks for rows
    for reason in entry["reasons"]:
        assert f"- {escape(reason)}" in structured
    assert "After fine-tuning: SLM + adapter is within delta of the hosted model on every core metric." in structured
    assert (
        "| ` structured ` | SLM trails | fine-tune | 0.05 | +0.600 [+0.068, +0.932] (exact\\_match) exceeds delta "
        "| +0.000 (json\\_valid) within delta |"
    ) in markdown


def test_inconclusive_verdict_says_how_many_rows_would_resolve_it(project: dict[str, Path]) -> None:
    entry = write_decision(project["eval"], delta=0.1)["structured"]
    # at delta 0.1 both gaps' intervals straddle delta: ten rows cannot tell
    assert entry["verdict"] == "inconclusive" and isinstance(entry["rows_needed"], int)
    structured = section(build(project), "structured")
    text = escape(entry["verdict_text"].removeprefix("inconclusive: "))
    assert f"Verdict: **inconclusive** \u2014 {text}\n" in structured
    assert f"Rows needed: about {entry['rows_needed']} paired rows would resolve it (this run has n = 10)." in structured
    assert "fine\\_tune = 1 (fine-tune the SLM), set by the point rule with delta = 0.1:" in structured


def test_older_files_without_intervals_get_wilson_and_the_point_gap(project: dict[str, Path]) -> None:
    new_keys = ("rule", "verdict", "verdict_text", "rows_needed")
    paired_keys = ("hosted_ci95", "slm_ci95", "gap_ci95", "only_hosted", "only_slm", "mcnemar_p", "rows_needed", "slm_after_ci95")
    for name in ("structured_azure.json", "structured_slm.json", "structured_slm_ft.json"):
        edit_json(project["eval"] / name, lambda doc: [doc.pop(key) for key in ("counts", "intervals")])

    def strip(doc: dict) -> None:
        for entry in doc["tracks"].values():
            for key in new_keys:
                entry.pop(key)
            for metric in entry["metrics"].values():
                for key in (*paired_keys, "after_gain", "after_gain_ci95", "after_mcnemar_p"):
                    metric.pop(key, None)

    edit_json(project["eval"] / "decision.json", strip)
    markdown = build(project)
    structured = section(markdown, "structured")
    # Wilson from round(rate * n) of n, rounded as the harness does: the digits the files carried; gaps as points
    assert metric_row(structured, "exact_match_rate") == (
        "| ` exact_match_rate ` | 0.900 [0.596, 0.982] | 0.300 [0.108, 0.603] | 0.900 [0.596, 0.982] | +0.600 | +0.000 |  |"
    )
    assert metric_row(structured, "json_valid_rate").startswith("| ` json_valid_rate ` | 1.000 [0.723, 1.000] |")
    assert "Verdict:" not in structured
    assert "Decision: **fine-tune** \u2014 the SLM trails the hosted model by more than delta = 0.05:" in structured
    assert "| ` structured ` | not recorded | fine-tune | 0.05 | +0.600 (exact\\_match) exceeds delta |" in markdown


def test_metric_file_interval_that_disagrees_with_its_rows_is_refused(project: dict[str, Path]) -> None:
    hosted = project["eval"] / "structured_azure.json"
    edit_json(hosted, lambda doc: doc["intervals"].update(exact_match_rate=[0.5, 0.95]))
    with pytest.raises(ReportInputError, match=re.escape(f"{hosted}: intervals.exact_match_rate is [0.5, 0.95] but its predictions ")):
        build(project)


def test_failed_paired_after_comparison_is_said(project: dict[str, Path]) -> None:
    def fail(doc: dict) -> None:
        doc["tracks"]["structured"]["after_comparison_error"] = "row ids differ"
        for metric in doc["tracks"]["structured"]["metrics"].values():
            for key in ("after_gain", "after_gain_ci95", "after_mcnemar_p"):
                metric.pop(key)

    edit_json(project["eval"] / "decision.json", fail)
    structured = section(build(project), "structured")
    assert "Fine-tuned vs base: no paired comparison (row ids differ)." in structured
    assert metric_row(structured, "exact_match_rate").endswith("| +0.000 |  |")


def test_chart_draws_each_run_with_its_interval_as_error_bars(project: dict[str, Path]) -> None:
    decision = load_decision(project["eval"])
    tracks = [load_track(project["eval"], project["ft"], t, decision, RunNames()) for t in ("structured", "toolcall")]
    figure = chart_figure([chart_track(inputs) for inputs in tracks])
    structured, toolcall = figure.axes[:2]
    bars = [c for c in structured.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3  # hosted, SLM, SLM + adapter
    # per run, one vertical segment per core metric (json_valid, exact_match) from the interval's low to its high
    spans = [[tuple(round(y, 4) for y in segment[:, 1]) for segment in c.lines[2][0].get_segments()] for c in bars]
    assert spans == [
        [(0.7225, 1.0), (0.5958, 0.9821)],
        [(0.2366, 0.7634), (0.1078, 0.6032)],
        [(0.7225, 1.0), (0.5958, 0.9821)],
    ]
    # no adapter run on toolcall: its bars are "not run" and carry no error bar
    assert len([c for c in toolcall.containers if isinstance(c, ErrorbarContainer)]) == 2


def test_runs_table_has_n_errors_dataset_identity_wall_time_and_trace(project: dict[str, Path]) -> None:
    structured = section(build(project), "structured")
    sha = sha256_file(project["root"] / "02_dataset" / "structured" / "test.jsonl")[:12]
    slm_row = next(line for line in structured.splitlines() if line.startswith("| SLM | "))
    assert "| 10 | 1 (timeout: 1) | test |" in slm_row
    assert f"` {sha} `" in slm_row and "7.2 s" in slm_row
    assert "[trace](<https://cloud.langfuse.com/project/p/traces/trace-structured_slm>)" in slm_row
    assert "1 min 02 s" in next(line for line in structured.splitlines() if line.startswith("| hosted | "))
    assert (
        "- hosted: ` name=azure, deployment=gpt-4o-mini, endpoint=https://example.openai.azure.com/openai/deployments/gpt-4o-mini `"
        in structured
    )
    assert "- SLM: ` model_path=slm_swap/models/gemma3-270m, base=gemma3-270m-q4, quantization=nf4 `" in structured
    assert "timeout_s" not in structured  # settings stay in the metric file
    assert "- final\\_losses: ` train_loss=0.41, val_loss=0.52 `" in structured
    assert "- dataset\\_sha256: ` train=abababababab `" in structured
    assert "- Langfuse: [trace](<https://cloud.langfuse.com/project/p/traces/train>)" in structured


def test_step_times_listed_with_total(project: dict[str, Path]) -> None:
    markdown = build(project, {"prepare": 1.25, "evaluate hosted": 125.0, "fine-tune structured": 3599.6})
    assert "| prepare | 1.2 s |" in markdown
    assert "| evaluate hosted | 2 min 05 s |" in markdown
    assert "| fine-tune structured | 60 min 00 s |" in markdown
    assert "| **total** | 62 min 06 s |" in markdown


def test_without_step_times_says_not_recorded(project: dict[str, Path]) -> None:
    assert "Step times: not recorded" in build(project)


def test_failure_kinds_ranked_with_counts_per_run(project: dict[str, Path]) -> None:
    structured = section(build(project), "structured")
    # arguments_differ: hosted 1 + SLM 1 + adapter 1 = 3; code_fence: SLM 2; then four kinds with 1 each, by name
    rows = [line for line in structured.splitlines() if line.startswith("| ` ") and "_rate" not in line]
    assert [r.split("`")[1].strip() for r in rows] == ["arguments_differ", "code_fence", "invalid_json", "model_error", "text_around_json"]
    assert rows[0] == "| ` arguments_differ ` | 1 | 1 | 1 |"
    assert "wrong_name" not in structured  # the sixth kind falls outside the top five


def test_failure_example_shows_request_gold_and_output_as_written(project: dict[str, Path]) -> None:
    markdown = build(project)
    structured = section(markdown, "structured")
    example = structured.split("**code\\_fence**")[1].split("**")[0]
    assert "example from SLM, row ` test-0000 `" in example
    spans = code_spans(example)
    # the parsed code spans give back the request, gold and output exactly, newlines shown as \n
    assert spans[1] == "request number 0 | with `ticks`"
    assert spans[2] == gold("structured", 0)
    assert spans[3] == "```json\\n" + gold("structured", 0) + "\\n```"


def test_failed_model_call_example_shows_the_error(project: dict[str, Path]) -> None:
    toolcall = section(build(project), "toolcall")
    example = toolcall.split("**model\\_error**")[1].split("**")[0]
    assert "row ` test-0004 `" in example
    assert "output: none \u2014 timeout: ` read timed out after 60 s `" in example


def test_missing_everything_reads_not_run_and_still_draws(tmp_path: Path) -> None:
    md, png = tmp_path / "out" / "report.md", tmp_path / "out" / "report.png"
    write_report(tmp_path / "absent", tmp_path / "absent_ft", None, md, png)
    markdown = md.read_text(encoding="utf-8")
    assert markdown.count("Not run: no metric files and no decision for this track.") == 2
    assert "| ` toolcall ` | not run | not run | not run | not run | not run |" in markdown
    assert Image.open(png).size[0] > 0


def test_no_decision_and_no_predictions_are_reported_not_crashed(project: dict[str, Path]) -> None:
    (project["eval"] / "decision.json").unlink()
    (project["eval"] / "toolcall_slm.predictions.jsonl").unlink()
    markdown = build(project)
    toolcall = section(markdown, "toolcall")
    assert "Decision: not run (no decision.json entry for this track)." in toolcall
    assert "not available (` toolcall_slm.predictions.jsonl ` not found)" in toolcall
    assert "| ` toolcall ` | not run | not run | not run | +0.500 (name\\_match) | not run |" in markdown


def test_changed_dataset_hides_gold_rather_than_mismatching_it(project: dict[str, Path]) -> None:
    dataset = project["root"] / "02_dataset" / "structured" / "test.jsonl"
    lines = dataset.read_text(encoding="utf-8").splitlines()
    dataset.write_text("\n".join(reversed(lines)) + "\n", encoding="utf-8")
    structured = section(build(project), "structured")
    assert "changed since the run \\(sha256 differs\\)" in structured
    assert "- gold:" not in structured


def test_decision_made_from_other_metric_files_is_flagged(project: dict[str, Path]) -> None:
    dataset = project["root"] / "02_dataset" / "toolcall" / "test.jsonl"
    write_run(project["eval"], dataset, "toolcall", "slm", None, {})
    toolcall = section(build(project), "toolcall")
    assert "decision.json was made from a different SLM metric file than toolcall\\_slm.json" in toolcall


def test_run_without_langfuse_trace_says_not_traced(project: dict[str, Path]) -> None:
    dataset = project["root"] / "02_dataset" / "toolcall" / "test.jsonl"
    write_run(project["eval"], dataset, "toolcall", "azure", None, {}, langfuse=False)
    hosted_row = next(line for line in section(build(project), "toolcall").splitlines() if line.startswith("| hosted | "))
    assert hosted_row.endswith("| not traced |")


def test_png_is_a_png_of_sane_size(project: dict[str, Path]) -> None:
    build(project)
    data = project["png"].read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.verify()
    width, height = image.size
    assert 800 <= width <= 2400 and 300 <= height <= 1000
    assert 10_000 < len(data) < 1_000_000
    assert "![core metrics per track](<report.png>)" in project["md"].read_text(encoding="utf-8")


def test_same_inputs_give_the_same_report(project: dict[str, Path]) -> None:
    first = build(project)
    assert build(project) == first


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("structured_slm.json", "{not json", "structured_slm.json: not readable JSON"),
        (
            "structured_slm.json",
            '{"track": "toolcall", "metrics": {}}',
            "structured_slm.json: not an SLM Swap metric file for track 'structured'",
        ),
        (
            "structured_slm.json",
            '{"track": "structured", "metrics": {"json_valid_rate": 1.0}}',
            "structured_slm.json: no value for core metric(s) exact_match_rate",
        ),
        (
            "toolcall_azure.predictions.jsonl",
            '{"id": "test-0000"}\nnot json\n',
            "toolcall_azure.predictions.jsonl: line 2 is not valid JSON",
        ),
        (
            "structured_slm.json",
            '{"track": "structured", "metrics": {"json_valid_rate": 1.0, "exact_match_rate": 1.0}, '
            '"intervals": {"exact_match_rate": [0.9]}}',
            "structured_slm.json: 'intervals' is not a [low, high] pair for exact_match_rate",
        ),
        ("decision.json", "[]", "decision.json: not a decision file"),
    ],
)
def test_broken_input_names_the_file_and_writes_nothing(project: dict[str, Path], name: str, content: str, message: str) -> None:
    (project["eval"] / name).write_text(content, encoding="utf-8")
    with pytest.raises(ReportInputError, match=re.escape(message)):
        build(project)
    assert not project["md"].exists() and not project["png"].exists()


@pytest.mark.parametrize(
    "text, in_table, expected",
    [
        ("plain", False, "` plain `"),  # padded so a leading or trailing backtick cannot merge with the fence
        ("a ``b`` c", False, "``` a ``b`` c ```"),  # the fence outgrows the longest backtick run inside
        ("x\ny", False, "` x\\ny `"),  # a newline would end a list item or start a code block
        ("a|b", True, "` a\\|b `"),  # an unescaped pipe splits a table cell, even inside code
        ("   ", False, "(empty)"),  # an all-space span would render as nothing
    ],
)
def test_code_span_escaping(text: str, in_table: bool, expected: str) -> None:
    assert code(text, in_table=in_table) == expected


def test_cli_writes_report_beside_eval_dir(project: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    steps = project["root"] / "steps.json"
    steps.write_text(json.dumps({"prepare": 2.0}), encoding="utf-8")
    args = build_parser().parse_args(["--eval-dir", str(project["eval"]), "--ft-dir", str(project["ft"]), "--step-times", str(steps)])
    assert main(args) == 0
    assert "| prepare | 2.0 s |" in project["md"].read_text(encoding="utf-8")
    assert project["png"].exists()
    assert "report written to" in capsys.readouterr().out


def test_cli_broken_input_exits_2_with_the_file_name(project: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (project["eval"] / "structured_azure.json").write_text("{", encoding="utf-8")
    assert main(build_parser().parse_args(["--eval-dir", str(project["eval"]), "--ft-dir", str(project["ft"])])) == 2
    assert "structured_azure.json: not readable JSON" in capsys.readouterr().err


def test_batch_invariance_check_is_a_line_per_run_and_its_caveat_follows_the_decision(project: dict[str, Path]) -> None:
    block = {
        "k": 4,
        "engine": "static",
        "batch_invariant": False,
        "rows_compared": 4,
        "text_flips": 2,
        "flag_flips": {"valid_call": 1, "name_match": 0, "args_exact": 2},
        "rows_with_flag_flips": 1,
        "flag_flipped_rows": ["test-0003"],
    }
    edit_json(project["eval"] / "toolcall_slm.json", lambda doc: doc.update(batch_invariance=block))
    entry = write_decision(project["eval"])["toolcall"]
    toolcall = section(build(project), "toolcall")
    assert (
        "- SLM: 4 rows generated again one at a time (static engine, default mode): text differs on 2/4, flags on 1/4 "
        "(valid\\_call 1, name\\_match 0, args\\_exact 2); flag flips on ` test-0003 `"
    ) in toolcall.splitlines()
    gaps = {metric: pair["gap"] for metric, pair in entry["metrics"].items()}
    assert gaps == pytest.approx({"valid_call_rate": 0.4, "name_match_rate": 0.5, "args_exact_rate": 0.4})
    # valid_call: rate 0.25 < 0.4 - 0.05; args_exact: rate 0.5 >= 0.4 - 0.05, a caveat; name_match: no flips
    assert [c.split(":")[0] for c in entry["caveats"]] == ["args_exact_rate"]
    assert f"Caveat: {escape(entry['caveats'][0])}" in toolcall
    assert "Batch invariance" not in section(build(project), "structured")


@pytest.mark.parametrize(
    ("change", "field", "stated"),
    [
        (lambda d: d["metrics"].update(args_exact_rate=0.999), "metrics.args_exact_rate", "0.999"),  # higher
        (lambda d: d["metrics"].update(args_exact_rate=0.0), "metrics.args_exact_rate", "0.0"),  # lower
        (lambda d: d["metrics"].update(args_exact_rate=float("nan")), "metrics.args_exact_rate", "nan"),
        (lambda d: d["metrics"].update(args_exact_rate=float("inf")), "metrics.args_exact_rate", "inf"),
        (lambda d: d["counts"].update(args_exact=N + 1), "counts.args_exact", str(N + 1)),  # a count above n
    ],
    ids=["higher", "lower", "nan", "infinity", "count-above-n"],
)
def test_a_metric_file_that_disagrees_with_its_predictions_is_refused(project: dict[str, Path], change, field: str, stated: str) -> None:
    slm = project["eval"] / "toolcall_slm.json"
    document = json.loads(slm.read_text(encoding="utf-8"))
    recomputed = document["counts"]["args_exact"] if field.startswith("counts") else document["metrics"]["args_exact_rate"]
    change(document)
    slm.write_text(json.dumps(document), encoding="utf-8")
    predictions = project["eval"] / "toolcall_slm.predictions.jsonl"
    expected = (
        f"{slm}: {field} is {stated} but its predictions {predictions} give {recomputed}; "
        "the predictions are the source of truth: re-run the evaluation or restore the metric file"
    )
    with pytest.raises(ReportInputError) as refused:
        build(project)
    assert str(refused.value) == expected
    assert not project["md"].exists() and not project["png"].exists()


def test_a_non_finite_number_without_predictions_to_check_is_still_refused(project: dict[str, Path]) -> None:
    (project["eval"] / "toolcall_slm.predictions.jsonl").unlink()
    slm = project["eval"] / "toolcall_slm.json"
    edit_json(slm, lambda d: d.update(duration_s=None))  # write_json_atomic refuses NaN, so it goes in by hand
    slm.write_text(slm.read_text(encoding="utf-8").replace('"duration_s": null', '"duration_s": NaN'), encoding="utf-8")
    with pytest.raises(ReportInputError) as refused:
        build(project)
    assert str(refused.value) == f"{slm}: duration_s is nan, not a finite number"


# The report says what the verdict says: "keep" and "within delta" only where the verdict supports them
# (`slm_matches`, and a verdict-less old decision); `no_baseline` and `inconclusive` compare nothing with delta.


def set_verdict(eval_dir: Path, track: str, verdict: str, fine_tune: int) -> None:
    def edit(doc: dict) -> None:
        doc["tracks"][track].update(verdict=verdict, fine_tune=fine_tune, verdict_text=f"{verdict}: as decided")

    edit_json(eval_dir / "decision.json", edit)


def summary_row(markdown: str, track: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| ` {track} ` |"))


@pytest.mark.parametrize("verdict", ["no_baseline", "inconclusive"])
def test_unsettled_verdict_never_reads_keep_or_within_delta(project: dict[str, Path], verdict: str) -> None:
    # structured has an adapter run whose point gaps are at or below delta: the words the old report put beside them
    set_verdict(project["eval"], "structured", verdict, 0)
    markdown = build(project)
    for text in (summary_row(markdown, "structured"), section(markdown, "structured")):
        assert "keep" not in text.lower() and "within delta" not in text and "exceeds delta" not in text
    assert "| no fine-tuning |" in summary_row(markdown, "structured")
    assert "Decision: fine\\_tune = 0 (no fine-tuning" in section(markdown, "structured")


def test_slm_matches_reads_keep_and_within_delta(project: dict[str, Path]) -> None:
    set_verdict(project["eval"], "structured", "slm_matches", 0)
    markdown = build(project)
    assert "| keep SLM as is |" in summary_row(markdown, "structured") and "within delta" in summary_row(markdown, "structured")
    assert "Decision: fine\\_tune = 0 (keep the SLM as is)" in section(markdown, "structured")


def test_slm_trails_reads_fine_tune_and_compares_with_delta(project: dict[str, Path]) -> None:
    set_verdict(project["eval"], "structured", "slm_trails", 1)
    markdown = build(project)
    row = summary_row(markdown, "structured")
    assert "| fine-tune |" in row and "exceeds delta" in row and "keep" not in row
    assert "(fine-tune the SLM)" in section(markdown, "structured")
