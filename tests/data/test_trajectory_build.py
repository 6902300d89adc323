"""Trajectory records and the builder: verified, shortest per task, no duplicates, no test scenario, errors named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_swap.data.rows import DatasetError
from slm_swap.files import sha256_file
from slm_swap.tracks.agent.data.trajectories import read_trajectories
from slm_swap.tracks.agent.data.trajectory_build import build_training_records

SPLITS = {"train": ["t_1", "t_2", "t_3"], "val": ["v_1"], "test": ["x_1"]}


def confirm_all(records) -> dict[int, None]:
    """The selection tests' re-check: every claim holds (the real replay is tested in tests/agent/test_recheck.py)."""
    return {index: None for index in range(len(records))}


def record(task: str, sample: int, replies: list[str], accepted: bool = True, arm: str = "toolcall") -> dict:
    messages = [{"role": "system", "content": "act"}, {"role": "user", "content": f"do {task}"}]
    for reply in replies:
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "Observation:\nok"}]
    return {
        "messages": messages,
        "tools": [{"name": "ls"}],
        "verifier": {"name": "bfcl_multi_turn_checker", "accepted": accepted},
        "source": {"task_id": task, "arm": arm, "model": "teacher", "sample": sample},
    }


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "agent"
    folder.mkdir()
    for split, ids in SPLITS.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    return folder


def write(path: Path, records: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_the_shortest_accepted_trajectory_of_each_train_and_val_task_is_kept(tmp_path: Path, agent_dir: Path) -> None:
    teacher = write(
        tmp_path / "teacher.jsonl",
        [
            record("t_1", 0, ["a", "b", "c"]),  # accepted, 3 turns
            record("t_1", 1, ["a", "b"]),  # accepted, 2 turns: the one kept
            record("t_1", 2, ["z"], accepted=False),  # shortest, but rejected
            record("t_2", 0, ["a"], accepted=False),  # only rejected: nothing for t_2
            record("t_3", 0, ["a", "b"]),
            record("t_3", 1, ["a", "b"]),  # same messages as t_3#0: a duplicate
            record("v_1", 0, ["q"]),
            record("x_1", 0, ["a"]),  # a test task: never trained on
            record("gone_1", 0, ["a"]),  # not in any split
            record("t_3", 2, ["a"], arm="codeact"),  # the other arm
        ],
    )
    out = tmp_path / "agent_toolcall"
    manifest = build_training_records([teacher], agent_dir, out, "toolcall", confirm_all)
    train, val, rejected = (read_trajectories(out / f"{name}.jsonl") for name in ("train", "val", "rejected"))
    assert [r.id for r in train] == ["t_1#1", "t_3#0"]
    assert [r.id for r in val] == ["v_1#0"]
    assert sorted(r.id for r in rejected) == ["t_1#2", "t_2#0"]
    assert manifest["counts"] == {"train": 2, "val": 1, "rejected": 2}
    assert manifest["dropped"] == {
        "duplicate": 1,
        "longer than the task's shortest accepted": 1,
        "other arm (codeact)": 1,
        "rejected by the verifier": 2,
        "task not in the agent splits": 1,
        "test task (never trained on)": 1,
    }
    assert manifest["records_read"] == 10
    assert manifest["inputs"] == {str(teacher): sha256_file(teacher)}
    assert manifest["outputs"]["train.jsonl"] == sha256_file(out / "train.jsonl")
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_ties_keep_the_first_read_and_fewer_characters_win(tmp_path: Path, agent_dir: Path) -> None:
    teacher = write(tmp_path / "t.jsonl", [record("t_1", 0, ["long reply"]), record("t_1", 1, ["short"]), record("t_2", 0, ["same"])])
    other = write(tmp_path / "u.jsonl", [record("t_2", 5, ["SAME"])])
    build_training_records([teacher, other], agent_dir, tmp_path / "out", "toolcall", confirm_all)
    assert [r.id for r in read_trajectories(tmp_path / "out" / "train.jsonl")] == ["t_1#1", "t_2#0"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        (json.dumps({**record("t_1", 9, ["a"]), "messages": []}), "line 2: 'messages' must be a non-empty list"),
        (
            json.dumps({**record("t_1", 9, ["a"]), "messages": [{"role": "tool", "content": "x"}]}),
            "line 2: message 0 needs a role of system, user, assistant",
        ),
        (json.dumps({**record("t_1", 9, ["a"]), "verifier": {"name": "x"}}), "line 2: 'verifier' must say 'accepted'"),
        (json.dumps({**record("t_1", 9, ["a"]), "source": {"arm": "toolcall"}}), "line 2: 'source' must name its 'task_id'"),
        (json.dumps(record("t_1", 0, ["b"])), "line 2: id 't_1#0' already used on line 1"),
    ],
)
def test_a_broken_record_stops_the_build_with_file_and_line_and_writes_nothing(
    tmp_path: Path, agent_dir: Path, line: str, message: str
) -> None:
    teacher = write(tmp_path / "teacher.jsonl", [record("t_1", 0, ["a"]), line])
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=f"{teacher}: {message}"):
        build_training_records([teacher], agent_dir, out, "toolcall", confirm_all)
    assert not out.exists()


def test_nothing_to_train_on_is_an_error_that_says_why(tmp_path: Path, agent_dir: Path) -> None:
    teacher = write(tmp_path / "teacher.jsonl", [record("x_1", 0, ["a"]), record("t_1", 0, ["a"], accepted=False)])
    with pytest.raises(DatasetError, match="no accepted toolcall trajectory of a train or val task among the 2 records read"):
        build_training_records([teacher], agent_dir, tmp_path / "out", "toolcall", confirm_all)


def test_a_task_in_two_splits_is_refused(tmp_path: Path, agent_dir: Path) -> None:
    (agent_dir / "val.jsonl").write_text(json.dumps({"id": "t_1"}) + "\n")
    teacher = write(tmp_path / "teacher.jsonl", [record("t_1", 0, ["a"])])
    with pytest.raises(DatasetError, match="val.jsonl: line 1: task 't_1' is already in the train split"):
        build_training_records([teacher], agent_dir, tmp_path / "out", "toolcall", confirm_all)
