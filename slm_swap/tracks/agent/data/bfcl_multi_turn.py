"""BFCL's multi-turn tasks, read from the data files of the `bfcl-eval` package into typed records.

A category is two JSON-lines files, as for the single-turn reader (`bfcl`): `data/BFCL_v4_<cat>.json`
(id, `question` as one list of user messages per turn, `initial_config` per environment class,
`involved_classes`, and for `multi_turn_miss_func` the `missed_function` names held out until a later
turn) and `data/possible_answer/BFCL_v4_<cat>.json` (id, `ground_truth`: per turn a list of call
strings such as `"cd(folder='temp')"` or `"sort('report.txt')"`). The offered functions are the docs of
the involved classes in `data/multi_turn_func_doc/`, all of them, as BFCL's own runner offers them
(`excluded_function` is kept but, as in BFCL, not applied), less the held-out ones until their turn.

Ground-truth call strings are parsed with `ast` (never evaluated): a call of a bare name whose
arguments are literals. Positional arguments are named from the function doc's parameter order, so
every call is a name plus keyword arguments. The original strings are kept too: they are what BFCL's
checker replays for the reference state.

The four categories share scenarios: `multi_turn_<cat>_<n>` for one n has the same involved classes,
the same function path and (for 191 to 194 of the 200 n) the same initial config in every category;
`miss_func` and `miss_param` add a turn. So `scenario` is `multi_turn_<n>`, and splits group by it.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap.data.bfcl import bfcl_data_dir, paired_items
from slm_swap.data.rows import DatasetError, read_lines
from slm_swap.files import sha256_file

MULTI_TURN_CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
# the environment classes of the multi-turn categories and their function docs (BFCL's
# MULTI_TURN_FUNC_DOC_FILE_MAPPING, less the memory and web-search classes of other categories)
FUNC_DOC_FILES = {
    "GorillaFileSystem": "gorilla_file_system.json",
    "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json",
}


@dataclass(frozen=True)
class GroundTruthCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class MultiTurnTask:
    """One task: user turns in order, the environments they act on, and the ground-truth calls per turn.

    `turns[i]` is the user's message of turn i; it is None for a turn that only adds the held-out
    functions `missed_functions[i]` (BFCL then sends a fixed "more functions" message).
    """

    id: str
    category: str
    scenario: str
    turns: list[str | None]
    involved_classes: list[str]
    initial_config: dict[str, Any]
    functions: list[dict[str, Any]]
    missed_functions: dict[int, list[dict[str, Any]]]
    ground_truth: list[list[GroundTruthCall]]
    ground_truth_text: list[list[str]]
    excluded_functions: list[str] = field(default_factory=list)

    @property
    def long_context(self) -> bool:
        return "long_context" in self.category

    def functions_at(self, turn: int) -> list[dict[str, Any]]:
        """The function docs offered in turn `turn`: the first turn's, plus every held-out set added so far."""
        added = [doc for start, docs in sorted(self.missed_functions.items()) if start <= turn for doc in docs]
        return self.functions + added


@dataclass
class MultiTurnData:
    tasks: list[MultiTurnTask]
    rows_read: int
    categories: list[str]
    version: str | None = None
    dropped: Counter[str] = field(default_factory=Counter)
    source_files: dict[str, str] = field(default_factory=dict)


class _Skip(Exception):
    """The task is well formed but one we do not use; the message is the reason."""


def scenario_of(task_id: str) -> str:
    """`multi_turn_miss_func_12` -> `multi_turn_12`: the scenario every variant of task 12 shares."""
    prefix, _, number = task_id.rpartition("_")
    if not prefix.startswith("multi_turn_") or not number.isdigit():
        raise ValueError(f"id {task_id!r} is not multi_turn_<category>_<number>")
    return f"multi_turn_{number}"


def load_function_docs(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    docs = {}
    for class_name, file_name in FUNC_DOC_FILES.items():
        docs[class_name] = [record for _, record in _doc_lines(data_dir / "multi_turn_func_doc" / file_name)]
    return docs


def _doc_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The docs have names, not ids, so they are read as plain JSON lines."""
    records = []
    for number, line in enumerate(read_lines(path, "bfcl function doc file"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
        if not (isinstance(record, dict) and isinstance(record.get("name"), str) and isinstance(record.get("parameters"), dict)):
            raise DatasetError(f"{path}: line {number}: a function doc needs a string 'name' and 'parameters'")
        records.append((number, record))
    return records


def parse_call(text: str, docs_by_name: dict[str, dict[str, Any]]) -> GroundTruthCall:
    """`"sort('a.txt')"` -> GroundTruthCall("sort", {"file_name": "a.txt"}); ValueError when it is not such a call."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"call {text!r} is not Python ({exc.msg})") from None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ValueError(f"call {text!r} is not a call of a bare function name")
    name = node.func.id
    if name not in docs_by_name:
        raise _Skip("ground truth calls a function outside the involved classes")
    order = list(docs_by_name[name]["parameters"].get("properties", {}))
    if len(node.args) > len(order):
        raise ValueError(f"call {text!r} has more positional arguments than {name} has parameters")
    try:
        arguments = {order[i]: ast.literal_eval(arg) for i, arg in enumerate(node.args)}
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg in arguments:
                raise ValueError(f"call {text!r} repeats or unpacks an argument")
            arguments[keyword.arg] = ast.literal_eval(keyword.value)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(str(exc) if "call " in str(exc) else f"call {text!r} has a non-literal argument") from None
    return GroundTruthCall(name, arguments)


def _turns(question: Any, holdout_turns: set[int]) -> list[str | None]:
    if not isinstance(question, list) or not question or not all(isinstance(turn, list) for turn in question):
        raise ValueError("'question' is not a non-empty list of turns")
    turns: list[str | None] = []
    for index, messages in enumerate(question):
        if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            raise ValueError(f"turn {index}: messages need a string content")
        if not messages:
            if index not in holdout_turns:
                raise ValueError(f"turn {index} has no message and adds no function")
            turns.append(None)
        elif len(messages) != 1 or messages[0].get("role") != "user":
            raise _Skip("a turn is not exactly one user message")
        else:
            turns.append(messages[0]["content"])
    return turns


def _held_out(record: dict[str, Any], docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    missed = record.get("missed_function", {})
    if not isinstance(missed, dict) or not all(isinstance(k, str) and k.isdigit() and isinstance(v, list) for k, v in missed.items()):
        raise ValueError("'missed_function' is not {turn: [function names]}")
    by_name = {doc["name"]: doc for doc in docs}
    held: dict[int, list[dict[str, Any]]] = {}
    for turn, names in missed.items():
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"'missed_function' names {unknown}, not a function of the involved classes")
        held[int(turn)] = [by_name[n] for n in names]
    withheld = {doc["name"] for docs_ in held.values() for doc in docs_}
    return [doc for doc in docs if doc["name"] not in withheld], held


def _task(record: dict[str, Any], answer: dict[str, Any], category: str, docs: dict[str, list[dict[str, Any]]]) -> MultiTurnTask:
    classes = record.get("involved_classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ValueError("'involved_classes' is not a non-empty list of class names")
    if any(c not in docs for c in classes):
        raise _Skip("involves a class outside the multi-turn environments")
    config = record.get("initial_config", {})
    if not isinstance(config, dict):
        raise ValueError("'initial_config' is not an object")
    all_docs = [doc for c in classes for doc in docs[c]]
    offered, held = _held_out(record, all_docs)
    turns = _turns(record.get("question"), set(held))
    texts = answer.get("ground_truth")
    if not isinstance(texts, list) or not all(isinstance(t, list) and all(isinstance(s, str) for s in t) for t in texts):
        raise _AnswerError("'ground_truth' is not a list of turns of call strings")
    if len(texts) != len(turns):
        raise _AnswerError(f"'ground_truth' has {len(texts)} turns, the question {len(turns)}")
    by_name = {doc["name"]: doc for doc in all_docs}
    try:
        calls = [[parse_call(text, by_name) for text in turn] for turn in texts]
    except ValueError as exc:
        raise _AnswerError(str(exc)) from None
    excluded = record.get("excluded_function", [])
    return MultiTurnTask(
        record["id"], category, scenario_of(record["id"]), turns, classes, config, offered, held, calls, texts, list(excluded)
    )


class _AnswerError(ValueError):
    """The possible-answer line is broken (not the question line)."""


def load_multi_turn_category(
    data_dir: Path, category: str, docs: dict[str, list[dict[str, Any]]], dropped: Counter[str]
) -> tuple[list[MultiTurnTask], int]:
    """The category's tasks and how many items it has; skipped items are counted in `dropped`."""
    questions_path = data_dir / f"BFCL_v4_{category}.json"
    answers_path = data_dir / "possible_answer" / f"BFCL_v4_{category}.json"
    pairs = paired_items(questions_path, answers_path)
    tasks = []
    for number, question, answer_number, answer in pairs:
        item_id = question["id"]
        try:
            tasks.append(_task(question, answer, category, docs))
        except _AnswerError as exc:
            raise DatasetError(f"{answers_path}: line {answer_number} (id {item_id}): {exc}") from None
        except ValueError as exc:
            raise DatasetError(f"{questions_path}: line {number} (id {item_id}): {exc}") from None
        except _Skip as skip:
            dropped[str(skip)] += 1
    return tasks, len(pairs)


def load_multi_turn(data_dir: Path | None = None, categories: tuple[str, ...] = MULTI_TURN_CATEGORIES) -> MultiTurnData:
    """Read the categories from `data_dir`, or from the installed package when it is None."""
    data_dir, version = bfcl_data_dir(data_dir)
    docs = load_function_docs(data_dir)
    data = MultiTurnData([], 0, list(categories), version)
    for category in categories:
        tasks, read = load_multi_turn_category(data_dir, category, docs, data.dropped)
        data.tasks.extend(tasks)
        data.rows_read += read
        for name in (f"BFCL_v4_{category}.json", f"possible_answer/BFCL_v4_{category}.json"):
            data.source_files[name] = sha256_file(data_dir / name)
    for file_name in FUNC_DOC_FILES.values():
        data.source_files[f"multi_turn_func_doc/{file_name}"] = sha256_file(data_dir / "multi_turn_func_doc" / file_name)
    return data
