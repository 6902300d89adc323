"""BFCL's single-turn answers: an empty list of acceptable values means "leave this parameter out"."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from slm_swap.data.bfcl import load_bfcl, load_category


def write_category(data_dir: Path, answer: dict) -> None:
    (data_dir / "possible_answer").mkdir(parents=True)
    function = {
        "name": "record",
        "parameters": {"type": "dict", "properties": {"kept": {"type": "array"}, "left_out": {"type": "array"}}},
    }
    question = {"id": "tiny_0", "question": [[{"role": "user", "content": "Log it."}]], "function": [function]}
    (data_dir / "BFCL_v4_tiny.json").write_text(json.dumps(question) + "\n", encoding="utf-8")
    (data_dir / "possible_answer" / "BFCL_v4_tiny.json").write_text(json.dumps(answer) + "\n", encoding="utf-8")


def test_an_empty_list_of_acceptable_values_leaves_the_parameter_out(tmp_path: Path) -> None:
    write_category(tmp_path, {"id": "tiny_0", "ground_truth": [{"record": {"kept": [["a"]], "left_out": []}}]})
    dropped: Counter[str] = Counter()
    examples, read = load_category(tmp_path, "tiny", dropped)
    assert (read, dropped) == (1, Counter())
    assert examples[0].arguments == {"kept": ["a"]}


def test_the_two_live_simple_items_with_empty_alternatives_load_without_those_parameters() -> None:
    data = load_bfcl(categories=("live_simple",))
    by_id = {e.source_id: e for e in data.examples}
    first, second = by_id["live_simple_106-63-0"], by_id["live_simple_112-68-0"]
    assert first.name == second.name == "record"
    assert not {"auto_loan_payment_start", "bank_hours_start"} & set(first.arguments)
    assert first.arguments["cancel_card_start"] == ["I want to cancel my card and ensure the safety of my account."]
    assert second.arguments == {"outofscope": ["what is the weather like"]}
