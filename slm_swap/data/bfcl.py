"""Examples from the data files shipped inside the `bfcl-eval` package.

Each category is two JSON-lines files: `data/BFCL_v4_<cat>.json` (id, question as
`[[{role, content}, ...]]`, function schemas) and `data/possible_answer/BFCL_v4_<cat>.json`
(id, ground_truth as `[{function_name: {param: [acceptable values]}}]`). We take the
first acceptable value of each parameter; a first value of "" marks the parameter
optional, and an empty list of acceptable values means the parameter must be left out
(two items of `live_simple`), so both are left out. The package is located without importing it: importing
bfcl_eval pulls in its heavy dependencies, which the project installs without.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections import Counter
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError, parse_id_record, read_lines
from slm_swap.data.sources import Example, SourceData
from slm_swap.files import sha256_file

BFCL_PACKAGE = "bfcl_eval"
BFCL_DISTRIBUTION = "bfcl-eval"
BFCL_CATEGORIES = ("simple_python", "multiple", "live_multiple")
INSTALL_HINT = f"pip install --no-deps {BFCL_DISTRIBUTION}==2026.3.23"

# BFCL schema type -> Python types a ground-truth value of that type may have. "float"
# takes ints too, as BFCL's own checker does; types missing here are not checked.
_DECLARED_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "float": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "tuple": (list,),
    "dict": (dict,),
}


class _Skip(Exception):
    """The item is well formed but not a single-call example we can use; the message is the reason."""


def find_bfcl_data() -> Path:
    spec = importlib.util.find_spec(BFCL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"the {BFCL_DISTRIBUTION} package is not installed (run `{INSTALL_HINT}`) and no --bfcl-data folder was given")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def installed_bfcl_version() -> str | None:
    try:
        return f"{BFCL_DISTRIBUTION} {importlib.metadata.version(BFCL_DISTRIBUTION)}"
    except importlib.metadata.PackageNotFoundError:
        return None


def read_json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-blank line; each record must be an object with a string id."""
    lines = read_lines(path, "bfcl data file")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        records.append((number, parse_id_record(line, f"{path}: line {number}")))
    return records


def _first_values(alternatives: dict[str, Any]) -> dict[str, Any]:
    """{param: [acceptable, ...]} -> {param: first acceptable}, leaving out optional ("") and omitted ([]) params."""
    chosen = {}
    for param, values in alternatives.items():
        if not isinstance(values, list):
            raise ValueError(f"parameter {param!r}: expected a list of acceptable values")
        if values and values[0] != "":
            chosen[param] = values[0]
    return chosen


def _resolve_value(value: Any, schema: dict[str, Any]) -> Any:
    """Dicts, and lists of dicts, hold one more level of alternatives, as BFCL's dict_checker reads them."""
    if schema.get("type") == "dict" and isinstance(value, dict):
        return _first_values(value)
    if schema.get("type") == "array" and schema.get("items", {}).get("type") == "dict" and isinstance(value, list):
        return [_first_values(item) if isinstance(item, dict) else item for item in value]
    return value


def _matches_type(value: Any, declared: Any) -> bool:
    allowed = _DECLARED_TYPES.get(declared) if isinstance(declared, str) else None
    if allowed is None:
        return True
    # bool is an int subclass, but True is no answer for an integer parameter
    return isinstance(value, allowed) and (declared == "boolean" or not isinstance(value, bool))


def _user_text(question: Any) -> str:
    if not isinstance(question, list) or not all(isinstance(turn, list) for turn in question):
        raise ValueError("'question' is not a list of turns")
    if len(question) != 1:
        raise _Skip("question has more than one turn")
    messages = question[0]
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages):
        raise ValueError("'question' messages need a string role and content")
    if len(messages) != 1 or messages[0]["role"] != "user":
        raise _Skip("question is not a single user message")
    return messages[0]["content"].strip()


def _ground_truth_call(record: dict[str, Any], functions: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    calls = record.get("ground_truth")
    if not isinstance(calls, list) or not all(isinstance(c, dict) and len(c) == 1 for c in calls):
        raise ValueError("'ground_truth' is not a list of {function_name: {param: [values]}}")
    if len(calls) != 1:
        raise _Skip("ground truth is not exactly one call")
    ((name, alternatives),) = calls[0].items()
    if not isinstance(alternatives, dict):
        raise ValueError(f"ground truth for {name!r} is not an object of parameters")
    function = next((f for f in functions if f["name"] == name), None)
    if function is None:
        raise _Skip("ground-truth function is not among the offered tools")
    properties = function["parameters"]["properties"]
    arguments = {}
    for param, value in _first_values(alternatives).items():
        if param not in properties:
            raise _Skip("ground truth uses a parameter the tool does not declare")
        value = _resolve_value(value, properties[param])
        if not _matches_type(value, properties[param].get("type")):
            raise _Skip("ground-truth value does not match the declared type")
        arguments[param] = value
    return name, arguments


def _check_functions(functions: Any) -> list[dict[str, Any]]:
    if not isinstance(functions, list) or not functions:
        raise ValueError("'function' is not a non-empty list")
    for function in functions:
        if not isinstance(function, dict):
            raise ValueError("every function must be an object")
        parameters = function.get("parameters")
        if not (isinstance(function.get("name"), str) and isinstance(parameters, dict) and isinstance(parameters.get("properties"), dict)):
            raise ValueError("every function needs a string 'name' and 'parameters.properties'")
    return functions


def load_category(data_dir: Path, category: str, dropped: Counter[str]) -> tuple[list[Example], int]:
    """The category's usable examples and how many items it has; skipped items are counted in `dropped`."""
    questions_path = data_dir / f"BFCL_v4_{category}.json"
    answers_path = data_dir / "possible_answer" / f"BFCL_v4_{category}.json"
    pairs = paired_items(questions_path, answers_path)
    examples = []
    for number, question, answer_number, answer in pairs:
        item_id = question["id"]
        try:
            user_text = _user_text(question.get("question"))
            functions = _check_functions(question.get("function"))
        except ValueError as exc:
            raise DatasetError(f"{questions_path}: line {number} (id {item_id}): {exc}") from None
        except _Skip as skip:
            dropped[str(skip)] += 1
            continue
        try:
            name, arguments = _ground_truth_call(answer, functions)
        except ValueError as exc:
            raise DatasetError(f"{answers_path}: line {answer_number} (id {item_id}): {exc}") from None
        except _Skip as skip:
            dropped[str(skip)] += 1
            continue
        examples.append(Example(item_id, user_text, functions, name, arguments))
    return examples, len(pairs)


def records_by_id(path: Path, records: list[tuple[int, dict[str, Any]]]) -> dict[str, tuple[int, dict[str, Any]]]:
    """{id: (line, record)}; a repeated id is a broken file, named with both lines."""
    by_id: dict[str, tuple[int, dict[str, Any]]] = {}
    for number, record in records:
        if record["id"] in by_id:
            raise DatasetError(f"{path}: line {number} (id {record['id']}): id already used on line {by_id[record['id']][0]}")
        by_id[record["id"]] = (number, record)
    return by_id


def paired_items(questions_path: Path, answers_path: Path) -> list[tuple[int, dict[str, Any], int, dict[str, Any]]]:
    """(question line, question, answer line, answer) per item of a BFCL category, in the questions' order.

    A repeated id in either file, or a question without an answer, is a DatasetError naming the file and line."""
    questions = read_json_lines(questions_path)
    records_by_id(questions_path, questions)
    answers = records_by_id(answers_path, read_json_lines(answers_path))
    pairs = []
    for number, question in questions:
        if question["id"] not in answers:
            raise DatasetError(f"{questions_path}: line {number} (id {question['id']}): no entry in {answers_path}")
        pairs.append((number, question, *answers[question["id"]]))
    return pairs


def bfcl_data_dir(data_dir: Path | None) -> tuple[Path, str | None]:
    """The BFCL data folder to read and the bfcl-eval version it came from (None for a folder given by hand)."""
    version = None
    if data_dir is None:
        data_dir, version = find_bfcl_data(), installed_bfcl_version()
    if not data_dir.is_dir():
        raise DatasetError(f"{data_dir}: BFCL data folder not found")
    return data_dir, version


def load_bfcl(data_dir: Path | None = None, categories: tuple[str, ...] = BFCL_CATEGORIES) -> SourceData:
    """Read the categories from `data_dir`, or from the installed package when it is None."""
    data_dir, version = bfcl_data_dir(data_dir)
    data = SourceData("bfcl", [], 0, categories=list(categories), version=version)
    for category in categories:
        examples, read = load_category(data_dir, category, data.dropped)
        data.examples.extend(examples)
        data.rows_read += read
        for name in (f"BFCL_v4_{category}.json", f"possible_answer/BFCL_v4_{category}.json"):
            data.source_files[name] = sha256_file(data_dir / name)
    return data
