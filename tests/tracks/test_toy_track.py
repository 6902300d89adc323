"""A third track, added by following the recipe in `slm_swap/tracks/__init__.py`, and nothing else.

The toy track's cases are words; a case passes when the word, upper-cased, is its expected answer. It is written
the way the recipe says (a definition, an implementation of `Track` with `track(name)`, its name in the registry,
an evals module), then run by the real plugin: the metric file, the predictions, the trace, the terminal summary,
the gate and the report's section all follow without a line of the harness changing.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from slm_swap.harness.records import load_metric_file
from slm_swap.report.build import track_sections
from slm_swap.tracks import registry

pytest_plugins = ["pytester"]

TOY_TRACK = '''
"""The toy track: one case per word; passes when the word upper-cased is the expected answer."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from slm_swap.harness.trace import eval_run_trace
from slm_swap.layout import metric_path
from slm_swap.stats.intervals import wilson_interval
from slm_swap.tracing.recorder import Score, SpanTree
from slm_swap.tracing.runs import record_eval_run
from slm_swap.tracks.protocol import Collected


@dataclass(frozen=True)
class ToyDefinition:  # step 1: name, core metrics, paired checks, reported metrics
    name: str = "toy"
    core_metrics: tuple = ("match_rate",)
    checks: tuple = ("match",)
    reported_metrics: tuple = ()
    case_noun: str = "word"
    missing_hosted_hint: str = ""


DEFINITION = ToyDefinition()


@dataclass(frozen=True)
class WordTrace:  # the track's part of the trace: one span per word, its check as a score
    record: dict

    def span(self, model_name, fallback_at):
        passed = self.record["passed"]
        return SpanTree(self.record["id"], fallback_at, fallback_at, input=self.record["word"], output=passed,
                        scores=[Score("match", float(passed), "BOOLEAN", fallback_at)])


def summarize(records):
    passed = sum(r["passed"] for r in records)
    n = len(records)
    return {
        "n": n, "errors": 0, "error_classes": {}, "passed": passed,
        "metrics": {"match_rate": passed / n if n else None},
        "counts": {"match_rate": passed},
        "intervals": {"match_rate": wilson_interval(passed, n).as_list() if n else None},
    }


def read(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


class ToyTrack:  # step 2: the members of Track
    name, case_noun = DEFINITION.name, DEFINITION.case_noun
    core_metrics, checks, reported_metrics = DEFINITION.core_metrics, DEFINITION.checks, DEFINITION.reported_metrics
    answered_by = frozenset({"gold"})
    case_fixture = "case"

    def refusal(self, model):
        return None if model in self.answered_by else f"--model={model} does not answer the toy track"

    def parametrize(self, metafunc, context):
        cases = read(context.settings.dataset_path(self.name))
        metafunc.parametrize("case", cases, ids=[case["id"] for case in cases])

    def collect(self, report):
        props = dict(report.user_properties)
        if "toy_case" not in props:
            return None
        return Collected(props["toy_case"]["id"], props["toy_case"], {"name": "gold"})

    def run_tag(self, settings):
        return settings.tag

    def metric_part(self, run, settings, context):
        return summarize(run.sorted_records())

    def prediction_lines(self, records):
        return list(records)

    def write_more(self, run, settings, document):
        return None

    def trace(self, langfuse, settings, document, run, context, secrets):
        cases = [WordTrace(record) for record in run.sorted_records()]
        return record_eval_run(langfuse, eval_run_trace(settings, document, summary_keys=("n", "passed")), cases, secrets=secrets)

    def summary_lines(self, document):
        return [f"  toy words matched {document['passed']} of {document['n']}"]

    def flags(self, records):
        return {case_id: {"match": record["passed"]} for case_id, record in records.items()}

    def recompute(self, predictions):
        records = read(predictions)
        return summarize(records), self.flags({r["id"]: r for r in records})

    def reference_problem(self, reference, settings, reference_path):
        return None

    def check_predictions(self, path):
        read(path)

    def decision_runs(self, eval_dir, hosted_model, after_tag, arm):
        runs = ((hosted_model, None), ("slm", None), ("slm", after_tag))
        return tuple(metric_path(eval_dir, self.name, model, tag) for model, tag in runs)

    def report_section(self, eval_dir):
        runs = sorted(Path(eval_dir).glob("toy_*.json"))
        return ["## Toy track", ""] + [f"- {p.name}: {json.loads(p.read_text())['passed']} words matched" for p in runs]


def track(name):
    return ToyTrack()
'''

TOY_EVALS = '''
"""The toy track's cases (step 4: wiring only)."""

import pytest

TRACK = "toy"


@pytest.fixture
def record_case(request):
    def record(case, passed):
        request.node.user_properties.append(("toy_case", {"id": case["id"], "word": case["word"], "passed": passed}))
    return record


def test_toy(case, record_case):
    passed = case["word"].upper() == case["expected"]
    record_case(case, passed)
    assert passed, f"{case['word']!r} upper-cased is not {case['expected']!r}"
'''

WORDS = [("toy-0000", "swap", "SWAP"), ("toy-0001", "slm", "SLM"), ("toy-0002", "track", "TRACKS")]


@pytest.fixture
def toy_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeini("[pytest]\naddopts = -p slm_swap.harness.plugin -p no:cacheprovider\n")
    pytester.makepyfile(toy_track=TOY_TRACK)
    pytester.syspathinsert()
    (pytester.mkdir("evals") / "test_toy.py").write_text(textwrap.dedent(TOY_EVALS), encoding="utf-8")
    dataset = pytester.path / "slm_swap" / "02_dataset" / "toy" / "test.jsonl"
    dataset.parent.mkdir(parents=True)
    dataset.write_text("".join(json.dumps({"id": i, "word": w, "expected": e}) + "\n" for i, w, e in WORDS), encoding="utf-8")
    # step 3: its name in the registry
    monkeypatch.setitem(registry.IMPLEMENTATIONS, "toy", "toy_track")
    import toy_track  # noqa: PLC0415 (importable once pytester's folder is on the path)

    monkeypatch.setitem(registry.DEFINITIONS, "toy", toy_track.DEFINITION)
    registry.get_track.cache_clear()
    yield pytester
    registry.get_track.cache_clear()


def test_a_toy_track_runs_through_the_harness_gate_and_report(toy_project: pytest.Pytester, langfuse_env, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = toy_project.runpytest_inprocess("evals", "--model=gold", "-k", "toy", f"--out-dir={out}")
    result.assert_outcomes(passed=2, failed=1)  # "track" upper-cased is not "TRACKS"
    document = load_metric_file(out / "toy_gold.json")
    assert (document["n"], document["passed"], document["metrics"]) == (3, 2, {"match_rate": pytest.approx(2 / 3)})
    lines = [json.loads(line) for line in (out / "toy_gold.predictions.jsonl").read_text().splitlines()]
    assert [(line["id"], line["passed"]) for line in lines] == [("toy-0000", True), ("toy-0001", True), ("toy-0002", False)]
    trace_id = document["langfuse"]["trace_id"]
    assert sorted(span.name for span in langfuse_env.spans(trace_id) if span.name.startswith("toy-")) == [i for i, _, _ in WORDS]
    result.stdout.fnmatch_lines(["toy [[]gold[]] n=3 errors=0  match_rate=0.667 *", "  toy words matched 2 of 3"])

    # the gate pairs the toy's flags, read back from the reference's predictions, as it does a row track's
    gated = toy_project.runpytest_inprocess(
        "evals", "--model=gold", "-k", "toy", f"--out-dir={tmp_path / 'again'}", f"--gate-against={out / 'toy_gold.json'}"
    )
    gated.stdout.fnmatch_lines(["gate match_rate: reference 0.667 current 0.667 drop +0.000 *ok", "gate: PASSED*"])

    assert track_sections(out)[:3] == ["## Toy track", "", "- toy_gold.json: 2 words matched"]
