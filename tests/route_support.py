"""Building two runs on disk for tools/route.py: a dataset of real prompts, each run's outputs scored by the track's
own scorer and written as the harness writes them (a metric file whose numbers its predictions give)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from slm_swap.files import sha256_file
from slm_swap.harness.records import prediction_lines, summarize
from slm_swap.prompts import build_prompt
from slm_swap.scoring.outcomes import RowRecord
from slm_swap.tracks.rows.definitions import get_track

CITY = {"type": "string"}
WEATHER = {"name": "get_weather", "parameters": {"type": "dict", "properties": {"city": CITY}, "required": ["city"]}}
# the gold of such a row leaves out a required parameter, as one BFCL ground truth does: right, but rejected
STRICT = {
    "name": "get_weather",
    "parameters": {"type": "dict", "properties": {"city": CITY, "days": {"type": "integer"}}, "required": ["city", "days"]},
}


def call(track: str, city: str) -> str:
    return get_track(track).format_call("get_weather", {"city": city})


def write_dataset(folder: Path, track: str, n: int, strict_rows: Sequence[int] = ()) -> Path:
    lines = [
        {
            "prompt": build_prompt(track, f"Weather in city {i}?", [STRICT if i in strict_rows else WEATHER]),
            "completion": call(track, f"C{i}"),
        }
        for i in range(n)
    ]
    path = folder / track / "test.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def write_run(folder: Path, name: str, track: str, dataset: Path, outputs: Sequence[str]) -> Path:
    """`<name>.json` and `<name>.predictions.jsonl` for `outputs`, one per dataset row, scored against the gold."""
    golds = [json.loads(line)["completion"] for line in dataset.read_text().splitlines()]
    records = []
    for index, (output, gold) in enumerate(zip(outputs, golds)):
        result = get_track(track).score(output, gold)
        records.append(RowRecord(f"test-{index:04d}", track, output, dict(result.flags), result.passed, result.failure, result.detail))
    doc = {"schema": 1, "track": track, "model": name.split("_")[1], "tag": None, "split": "test", **summarize(track, records)}
    doc["dataset"] = {"path": str(dataset), "sha256": sha256_file(dataset)}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    (folder / f"{name}.predictions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in prediction_lines(records)))
    return path


def known_pair(folder: Path, track: str = "toolcall") -> Path:
    """40 rows. SLM: rows 0-19 right; 20-24 valid but wrong (accepted); 25-34 prose (rejected); 35-39 right but missing
    a required parameter, as their gold does (rejected). Hosted: right except rows 30-36."""
    dataset = write_dataset(folder / "data", track, 40, strict_rows=range(35, 40))
    slm = [call(track, f"C{i}") if i < 20 or i >= 35 else call(track, "wrong") if i < 25 else "I cannot help." for i in range(40)]
    hosted = ["Sorry." if 30 <= i <= 36 else call(track, f"C{i}") for i in range(40)]
    write_run(folder, f"{track}_azure", track, dataset, hosted)
    write_run(folder, f"{track}_slm", track, dataset, slm)
    return folder
