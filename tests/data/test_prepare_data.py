"""Data preparation: sources to splits, determinism, the manifest, and bad input that must not corrupt anything."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slm_swap.data import splits as splits_module
from slm_swap.data.bfcl import BFCL_CATEGORIES, find_bfcl_data, load_bfcl
from slm_swap.data.rows import DatasetError, load_rows
from slm_swap.data.sources import Example
from slm_swap.data.splits import SPLITS, select_usable
from slm_swap.formats.jsontext import parse_strict_json
from slm_swap.formats.toolcall import find_tool_calls
from slm_swap.prompts import render_tools
from tools.prepare_data import build_parser, main

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "xlam_small.json"
COMMITTED = REPO / "slm_swap" / "02_dataset"
TRACKS = ("structured", "toolcall")


def run_tool(*argv: str) -> int:
    return main(build_parser().parse_args(list(argv)))


def prepare_fixture(out_dir: Path, source: Path = FIXTURE, seed: int = 13) -> int:
    return run_tool(
        "--source",
        "xlam",
        "--xlam-path",
        str(source),
        "--out-dir",
        str(out_dir),
        "--seed",
        str(seed),
        "--test-size",
        "3",
        "--val-size",
        "2",
        "--train-size",
        "100",
    )


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, hidden ones included, so leftovers from a failed run show up."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fixture_rows() -> list[dict]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows, indent=4), encoding="utf-8")
    return path


def test_xlam_fixture_gives_aligned_two_key_rows_on_both_tracks(tmp_path: Path) -> None:
    assert prepare_fixture(tmp_path) == 0
    for split, expected in (("test", 3), ("val", 2), ("train", 5)):
        structured = [json.loads(line) for line in (tmp_path / "structured" / f"{split}.jsonl").read_text().splitlines()]
        toolcall = [json.loads(line) for line in (tmp_path / "toolcall" / f"{split}.jsonl").read_text().splitlines()]
        assert len(structured) == len(toolcall) == expected
        for s_row, t_row in zip(structured, toolcall):
            assert list(s_row) == list(t_row) == ["prompt", "completion"]
            # line i of both tracks is the same example: same request, same call
            assert s_row["prompt"].split("Request: ")[-1] == t_row["prompt"].split("Request: ")[-1]
            (call,) = find_tool_calls(t_row["completion"])
            assert parse_strict_json(s_row["completion"]) == {"name": call.name, "arguments": parse_strict_json(call.body)}
        for track in TRACKS:
            assert len(load_rows(tmp_path / track / f"{split}.jsonl", track)) == expected


def test_both_tracks_offer_the_rows_tools_in_the_prompt(tmp_path: Path) -> None:
    # without the signatures no model could know the exact function and argument names
    prepare_fixture(tmp_path)
    by_request = {row["query"]: json.loads(row["tools"]) for row in fixture_rows() if row["id"] != 10}
    for track in ("toolcall", "structured"):
        for line in (tmp_path / track / "train.jsonl").read_text().splitlines():
            prompt = json.loads(line)["prompt"]
            tools = by_request[prompt.split("Request: ")[-1]]
            assert all(render_tools([tool]) in prompt for tool in tools)


def test_multi_call_and_repeated_request_are_dropped_with_reasons(tmp_path: Path) -> None:
    prepare_fixture(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["rows_read"] == 12
    assert manifest["dropped"] == {"answers is not exactly one call": 1, "duplicate request text": 1}
    assert manifest["usable"] == 10
    assert manifest["counts"] == {"train": 5, "val": 2, "test": 3}
    assert manifest["unused"] == 0


def test_same_seed_gives_identical_bytes_and_another_seed_another_split(tmp_path: Path) -> None:
    prepare_fixture(tmp_path / "a")
    prepare_fixture(tmp_path / "b")
    prepare_fixture(tmp_path / "c", seed=14)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    assert (tmp_path / "a" / "toolcall" / "test.jsonl").read_bytes() != (tmp_path / "c" / "toolcall" / "test.jsonl").read_bytes()


def test_no_prompt_lands_in_two_splits(tmp_path: Path) -> None:
    # the fixture repeats one request with other tools: deduplication must keep it to one split
    prepare_fixture(tmp_path)
    for track in TRACKS:
        seen: dict[str, str] = {}
        for split in SPLITS:
            for row in load_rows(tmp_path / track / f"{split}.jsonl", track):
                assert row.prompt not in seen, f"{track}: prompt in {seen.get(row.prompt)} and {split}"
                seen[row.prompt] = split


def test_manifest_names_source_and_hashes_every_file(tmp_path: Path) -> None:
    prepare_fixture(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["source"] == "xlam"
    assert manifest["seed"] == 13
    assert manifest["sizes"] == {"test": 3, "val": 2, "train": 100}
    assert manifest["source_files"] == {"xlam_small.json": hashlib.sha256(FIXTURE.read_bytes()).hexdigest()}
    assert sorted(manifest["files"]) == sorted(f"{t}/{s}.jsonl" for t in TRACKS for s in SPLITS)
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest
    assert str(tmp_path) not in (tmp_path / "manifest.json").read_text()


def test_unusable_examples_are_dropped_by_reason() -> None:
    tools = [{"name": "f", "parameters": {}}, {"name": 'g"h', "parameters": {}}]
    weather = {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}}
    strict = [{"name": "s", "parameters": {"type": "dict", "properties": weather, "required": ["city"]}}]
    examples = [
        Example("1", "ask f", tools, "f", {"a": 1}),
        Example("2", "ask f", tools, "f", {"a": 2}),  # same request text: same structured prompt
        Example("3", "   ", tools, "f", {}),
        Example("4", "ask missing", tools, "missing", {}),
        Example("5", "ask quoted", tools, 'g"h', {}),  # a quote cannot go into name="..."
        Example("6", "ask closing", tools, "f", {"a": "</tool_call>"}),  # would end the call early
        # gold that breaks the signature it was asked under: the router's validator would reject it
        Example("7", "ask strict", strict, "s", {"unit": "C"}),  # leaves out the required city
        Example("8", "ask enum", strict, "s", {"city": "Oslo", "unit": "K"}),
        Example("9", "ask typed", strict, "s", {"city": 7}),
        Example("10", "ask extra", strict, "s", {"city": "Oslo", "when": "now"}),
        Example("11", "ask right", strict, "s", {"city": "Oslo", "unit": "F"}),
    ]
    kept, dropped = select_usable(examples)
    assert [p.example.source_id for p in kept] == ["1", "11"]
    assert dropped == {
        "duplicate request text": 1,
        "empty request text": 1,
        "answer names a tool that is not offered": 1,
        "gold call cannot be written in a track's format": 2,
        "gold call breaks its offered signature (missing_required)": 1,
        "gold call breaks its offered signature (not_in_enum)": 1,
        "gold call breaks its offered signature (wrong_type)": 1,
        "gold call breaks its offered signature (unknown_parameter)": 1,
    }


def test_bfcl_source_reads_installed_package_categories_and_quirks() -> None:
    data = load_bfcl()
    assert data.categories == list(BFCL_CATEGORIES)
    assert data.version == "bfcl-eval 2026.3.23"
    by_id = {e.source_id: e for e in data.examples}
    assert {i.rsplit("_", 1)[0] for i in by_id if i.startswith(("simple_python", "multiple"))} == {"simple_python", "multiple"}
    assert any(i.startswith("live_multiple_") for i in by_id)
    # dotted function names survive; a first acceptable value of "" (z) is optional and left out
    assert (by_id["simple_python_2"].name, by_id["simple_python_2"].arguments) == ("math.hypot", {"x": 4, "y": 5})
    # question format [[{role, content}]] becomes the user text
    assert by_id["simple_python_0"].user_text == "Find the area of a triangle with a base of 10 units and height of 5 units."
    # dict parameters hold one more level of alternatives
    assert by_id["live_multiple_0-0-0"].arguments["new_preferences"] == {
        "size": "large",
        "milk_type": "coconut",
        "sweetness_level": "extra",
        "temperature": "hot",
        "special_instructions": "served boiling hot",
    }
    assert by_id["multiple_119"].arguments["conditions"] == [
        {"field": "age", "operation": ">", "value": "25"},
        {"field": "job", "operation": "=", "value": "engineer"},
    ]
    # system-message questions are not one user turn; a string parameter whose gold is null is unusable
    assert data.dropped["question is not a single user message"] == 37
    assert "live_multiple_1-0-1" not in by_id
    assert "live_multiple_1038-265-0" not in by_id


def test_regenerating_the_committed_default_splits_is_byte_identical(tmp_path: Path) -> None:
    assert run_tool("--out-dir", str(tmp_path)) == 0
    committed = tree_bytes(COMMITTED)
    assert sorted(committed) == sorted(tree_bytes(tmp_path))
    for name, content in tree_bytes(tmp_path).items():
        assert content == committed[name], f"{name} differs from the committed copy"


def break_row_json(path: Path) -> Path:
    text = FIXTURE.read_text(encoding="utf-8").replace('"id": 3,', '"id": 3,,')
    path.write_text(text, encoding="utf-8")
    return path


def drop_answers(path: Path) -> Path:
    rows = fixture_rows()
    del rows[5]["answers"]
    return write_rows(path, rows)


def garble_answers(path: Path) -> Path:
    rows = fixture_rows()
    rows[7]["answers"] = "[{name: 'search_products'}]"
    return write_rows(path, rows)


@pytest.mark.parametrize(
    ("make_source", "expected"),
    [
        (lambda tmp: tmp / "absent.json", "absent.json: file not found"),
        (lambda tmp: break_row_json(tmp / "bad_json.json"), "bad_json.json: row 3: not valid JSON"),
        (lambda tmp: drop_answers(tmp / "no_answers.json"), "no_answers.json: row 5 (id 5): missing key(s) ['answers']"),
        (lambda tmp: garble_answers(tmp / "garbled.json"), "garbled.json: row 7 (id 7): 'answers' is not valid JSON"),
    ],
    ids=["missing-file", "bad-json-row", "row-without-answers", "unparseable-answers"],
)
def test_bad_xlam_input_names_file_and_row_and_leaves_previous_splits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_source, expected: str
) -> None:
    out_dir = tmp_path / "out"
    prepare_fixture(out_dir)
    before = tree_bytes(out_dir)
    capsys.readouterr()
    assert prepare_fixture(out_dir, source=make_source(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err
    assert tree_bytes(out_dir) == before


def test_bad_bfcl_line_names_file_line_and_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "possible_answer").mkdir(parents=True)
    source = find_bfcl_data()
    for category in BFCL_CATEGORIES:
        for name in (f"BFCL_v4_{category}.json", f"possible_answer/BFCL_v4_{category}.json"):
            (data_dir / name).write_bytes((source / name).read_bytes())
    answers = data_dir / "possible_answer" / "BFCL_v4_multiple.json"
    lines = answers.read_text(encoding="utf-8").splitlines()
    lines[4] = json.dumps({"id": "multiple_4", "ground_truth": "kinematics"})
    answers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"BFCL_v4_multiple\.json: line 5 \(id multiple_4\): 'ground_truth' is not a list"):
        load_bfcl(data_dir)
    (data_dir / "BFCL_v4_simple_python.json").unlink()
    assert run_tool("--bfcl-data", str(data_dir), "--out-dir", str(tmp_path / "out")) == 2
    assert "BFCL_v4_simple_python.json: bfcl data file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_failed_swap_restores_the_previous_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prepare_fixture(tmp_path)
    before = tree_bytes(tmp_path)
    real_replace = os.replace

    def replace_failing_on_manifest(src, dst):
        # the manifest arrives last, after both track folders were swapped in
        if Path(dst) == tmp_path / "manifest.json" and ".prepare-" in str(src):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(splits_module.os, "replace", replace_failing_on_manifest)
    with pytest.raises(OSError, match="disk full"):
        prepare_fixture(tmp_path, seed=99)
    assert tree_bytes(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "structured", "toolcall"]


def test_command_line_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "tools/prepare_data.py",
            "--source",
            "xlam",
            "--xlam-path",
            str(tmp_path / "none.json"),
            "--out-dir",
            str(tmp_path / "out"),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'none.json'}: file not found\n"
    assert not (tmp_path / "out").exists()
