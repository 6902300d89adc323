"""Write slm_swap/05_eval/report.md and report.png from the metric files, predictions and decision.

    python tools/report.py
    python tools/report.py --eval-dir slm_swap/05_eval --ft-dir slm_swap/04_ft --step-times steps.json
    python tools/report.py --agent-only --agent-decision codeact slm_swap/05_eval/decision_agent_codeact.json \
        --out slm_swap/05_eval/report_phase2.md          # the Phase II loop's report: the agent track per arm

`--step-times` is a JSON object {"step name": seconds}; the pipeline passes its own
timings directly to `slm_swap.report.build.write_report`. Runs that did not happen appear
as "not run"; an input file that exists but is broken stops the report with its name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slm_swap.cli import REPO
from slm_swap.files import write_text_atomic
from slm_swap.layout import Layout, report_path
from slm_swap.report.build import write_report
from slm_swap.report.inputs import ReportInputError, RunNames
from slm_swap.tracks.agent.report.arms import agent_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=Layout(REPO).eval_dir, help="folder of the metric files and decision.json")
    parser.add_argument("--ft-dir", type=Path, default=Layout(REPO).ft_dir, help="folder of the adapters (adapter_<track>/)")
    parser.add_argument("--step-times", type=Path, default=None, help='JSON file {"step": seconds} shown as wall time per step')
    parser.add_argument("--hosted-model", default="azure", help="model name in the hosted metric file names")
    parser.add_argument("--after-tag", default="ft", help="tag of the SLM + adapter metric files")
    parser.add_argument(
        "--out", type=Path, default=None, help="report file (default <eval-dir>/report.md; the chart goes beside it as .png)"
    )
    parser.add_argument("--agent-only", action="store_true", help="only the agent track, per arm before and after (no chart)")
    parser.add_argument(
        "--agent-decision", nargs=2, action="append", default=[], metavar=("ARM", "FILE"), help="an arm's decision file (repeatable)"
    )
    return parser


def read_step_times(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportInputError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()):
        raise ReportInputError(f'{path}: expected a JSON object {{"step name": seconds}}')
    return {str(k): float(v) for k, v in data.items()}


def main(args: argparse.Namespace) -> int:
    out_md = args.out or report_path(args.eval_dir)
    out_png = out_md.with_suffix(".png")
    try:
        step_times = read_step_times(args.step_times) if args.step_times else None
        names = RunNames(hosted_model=args.hosted_model, after_tag=args.after_tag)
        if args.agent_only:
            write_text_atomic(out_md, agent_report(args.eval_dir, names, {arm: Path(f) for arm, f in args.agent_decision}, step_times))
            print(f"report written to {out_md}")
            return 0
        write_report(args.eval_dir, args.ft_dir, step_times, out_md, out_png, names=names, root=REPO)
    except ReportInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {out_md} (chart {out_png})")
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
