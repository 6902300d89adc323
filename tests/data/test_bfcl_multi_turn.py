"""BFCL's multi-turn tasks: reading them, bad input named by file and line, and splits by scenario."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import shutil
from pathlib import Path

import pytest
from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

from slm_swap.data.bfcl import find_bfcl_data
from slm_swap.data.rows import DatasetError
from slm_swap.tracks.agent.data.bfcl_multi_turn import FUNC_DOC_FILES, MULTI_TURN_CATEGORIES, GroundTruthCall, load_multi_turn, scenario_of
from slm_swap.tracks.agent.data.splits import ScenarioSplitSizes, assign_scenario_splits, load_split_tasks, prepare_multi_turn_splits


@pytest.fixture(scope="module")
def data():
    return load_multi_turn()


def copy_data(tmp_path: Path, category: str = "multi_turn_base") -> Path:
    source = find_bfcl_data()
    target = tmp_path / "data"
    (target / "possible_answer").mkdir(parents=True)
    shutil.copytree(source / "multi_turn_func_doc", target / "multi_turn_func_doc")
    for name in (f"BFCL_v4_{category}.json", f"possible_answer/BFCL_v4_{category}.json"):
        shutil.copy(source / name, target / name)
    return target


def edit_line(path: Path, index: int, edit) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[index])
    edit(record)
    lines[index] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_all_four_categories_read_into_800_tasks_with_nothing_dropped(data) -> None:
    assert data.categories == list(MULTI_TURN_CATEGORIES)
    assert (len(data.tasks), data.rows_read, dict(data.dropped)) == (800, 800, {})
    assert set(data.source_files) >= {"BFCL_v4_multi_turn_base.json", "possible_answer/BFCL_v4_multi_turn_miss_func.json"}
    assert (
        data.source_files["multi_turn_func_doc/math_api.json"]
        == hashlib.sha256((find_bfcl_data() / "multi_turn_func_doc/math_api.json").read_bytes()).hexdigest()
    )


def test_variant_ids_map_to_one_scenario_with_the_same_classes(data) -> None:
    assert scenario_of("multi_turn_miss_func_12") == scenario_of("multi_turn_base_12") == "multi_turn_12"
    # "multi_turn_base_1" is not scenario 12's prefix: the number is the whole last part
    assert scenario_of("multi_turn_base_1") != scenario_of("multi_turn_base_12")
    by_scenario: dict[str, set[tuple[str, ...]]] = {}
    for task in data.tasks:
        by_scenario.setdefault(task.scenario, set()).add(tuple(task.involved_classes))
    assert len(by_scenario) == 200 and all(len(classes) == 1 for classes in by_scenario.values())


def test_positional_ground_truth_arguments_are_named_and_the_text_is_kept(data) -> None:
    task = next(t for t in data.tasks if t.id == "multi_turn_base_0")
    assert task.ground_truth_text[2] == ["sort('final_report.pdf')"]
    assert task.ground_truth[2] == [GroundTruthCall("sort", {"file_name": "final_report.pdf"})]
    assert task.turns[0].startswith("Move 'final_report.pdf'")


def test_every_ground_truth_call_binds_to_its_environment_method(data) -> None:
    methods = {}
    for class_name in FUNC_DOC_FILES:
        cls = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]), class_name)
        methods.update({name: inspect.signature(m) for name, m in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")})
    for task in data.tasks:
        for call in (c for turn in task.ground_truth for c in turn):
            methods[call.name].bind(None, **call.arguments)  # TypeError names the task's bad call


def test_miss_func_holds_a_function_back_until_its_turn(data) -> None:
    task = next(t for t in data.tasks if t.id == "multi_turn_miss_func_5")
    assert task.turns[3] is None and task.ground_truth[2] == []
    assert [doc["name"] for doc in task.missed_functions[3]] == ["post_tweet"]
    assert "post_tweet" not in {doc["name"] for doc in task.functions_at(2)}
    assert "post_tweet" in {doc["name"] for doc in task.functions_at(3)}
    assert task.ground_truth[3][1].name == "post_tweet"


def test_bad_ground_truth_names_the_answers_file_line_and_id(tmp_path: Path) -> None:
    data_dir = copy_data(tmp_path)
    answers = data_dir / "possible_answer" / "BFCL_v4_multi_turn_base.json"
    edit_line(answers, 6, lambda r: r["ground_truth"][0].__setitem__(0, "cd(folder=somewhere)"))
    with pytest.raises(DatasetError, match=r"BFCL_v4_multi_turn_base\.json: line 7 \(id multi_turn_base_6\): call .* non-literal"):
        load_multi_turn(data_dir, ("multi_turn_base",))
    edit_line(answers, 6, lambda r: r["ground_truth"].pop())
    with pytest.raises(DatasetError, match=r"line 7 \(id multi_turn_base_6\): 'ground_truth' has \d turns, the question \d"):
        load_multi_turn(data_dir, ("multi_turn_base",))


def test_a_repeated_id_names_both_lines(tmp_path: Path) -> None:
    data_dir = copy_data(tmp_path)
    answers = data_dir / "possible_answer" / "BFCL_v4_multi_turn_base.json"
    edit_line(answers, 9, lambda r: r.__setitem__("id", "multi_turn_base_2"))
    with pytest.raises(DatasetError, match=r"line 10 \(id multi_turn_base_2\): id already used on line 3"):
        load_multi_turn(data_dir, ("multi_turn_base",))


def test_bad_question_names_the_questions_file_and_a_foreign_class_is_dropped(tmp_path: Path) -> None:
    data_dir = copy_data(tmp_path)
    questions = data_dir / "BFCL_v4_multi_turn_base.json"
    edit_line(questions, 3, lambda r: r["question"].__setitem__(1, []))
    with pytest.raises(DatasetError, match=r"BFCL_v4_multi_turn_base\.json: line 4 \(id multi_turn_base_3\): turn 1 has no message"):
        load_multi_turn(data_dir, ("multi_turn_base",))
    edit_line(questions, 3, lambda r: r.__setitem__("question", []))
    with pytest.raises(DatasetError, match=r"line 4 \(id multi_turn_base_3\): 'question' is not a non-empty list of turns"):
        load_multi_turn(data_dir, ("multi_turn_base",))
    shutil.copy(find_bfcl_data() / "BFCL_v4_multi_turn_base.json", questions)
    edit_line(questions, 3, lambda r: r.__setitem__("involved_classes", ["WebSearchAPI"]))
    data = load_multi_turn(data_dir, ("multi_turn_base",))
    assert len(data.tasks) == 199 and dict(data.dropped) == {"involves a class outside the multi-turn environments": 1}


def test_no_scenario_straddles_splits_and_the_same_seed_gives_the_same_splits(data) -> None:
    sizes = ScenarioSplitSizes()
    splits = assign_scenario_splits(data.tasks, 13, sizes)
    scenario_sets = {split: {t.scenario for t in tasks} for split, tasks in splits.items()}
    assert [len(scenario_sets[s]) for s in ("test", "val", "train")] == [50, 25, 125]
    assert not (scenario_sets["test"] & scenario_sets["val"] or scenario_sets["test"] & scenario_sets["train"])
    assert not scenario_sets["val"] & scenario_sets["train"]
    assert all(len(tasks) == 4 * len(scenario_sets[split]) for split, tasks in splits.items())
    again = assign_scenario_splits(list(reversed(data.tasks)), 13, sizes)
    assert {s: [t.id for t in ts] for s, ts in again.items()} == {s: [t.id for t in ts] for s, ts in splits.items()}
    other = assign_scenario_splits(data.tasks, 14, sizes)
    assert {t.scenario for t in other["test"]} != scenario_sets["test"]


def test_manifest_hashes_inputs_and_outputs_and_counts_by_category(data, tmp_path: Path) -> None:
    manifest = prepare_multi_turn_splits(data, tmp_path / "agent")
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((tmp_path / "agent" / name).read_bytes()).hexdigest() == digest
    assert manifest["counts"] == {"train": 500, "val": 100, "test": 200}
    assert manifest["counts_by_category"]["test"]["multi_turn_miss_func"] == 50
    assert manifest["source_files"] == data.source_files and manifest["dropped"] == {}
    first = json.loads((tmp_path / "agent" / "test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"id", "category", "scenario"}


def test_a_split_file_reads_back_into_its_tasks_in_order(data, tmp_path: Path) -> None:
    prepare_multi_turn_splits(data, tmp_path / "agent")
    lines = (tmp_path / "agent" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    tasks = load_split_tasks(tmp_path / "agent" / "test.jsonl", data)
    assert [t.id for t in tasks] == [json.loads(line)["id"] for line in lines] and len(tasks) == 200


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"id": "multi_turn_base_0"}\n{"id": 3}\n', "split.jsonl: line 2: not an object with a string 'id'"),
        ('{"id": "multi_turn_base_0"}\n{"id": "multi_turn_base_0"}\n', "split.jsonl: line 2: task 'multi_turn_base_0' appears twice"),
        ('{"id": "multi_turn_base_9999"}\n', "split.jsonl: line 1: task 'multi_turn_base_9999' is not among"),
        ('{"id": "multi_turn_base_0"\n', "split.jsonl: line 1: not valid JSON"),
        ("", "split.jsonl: split has no tasks"),
    ],
    ids=["id-not-a-string", "repeated-id", "unknown-task", "broken-json", "empty"],
)
def test_a_bad_split_file_names_file_and_line(data, tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "split.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=expected.replace("(", r"\(")):
        load_split_tasks(path, data)
