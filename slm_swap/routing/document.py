"""A routing evaluation as JSON (`route_<track>.json`'s variants) and its verdict in words."""

from __future__ import annotations

from typing import Any

from slm_swap.routing.offline import RoutingEvaluation
from slm_swap.stats.intervals import Verdict, rows_needed


def percent(share: float) -> str:
    return f"{share * 100:.0f} %"


def verdict_text(evaluation: RoutingEvaluation) -> str:
    """What the routed system supports, in one sentence that names the share the SLM serves."""
    track, delta, share = evaluation.track, evaluation.delta, percent(evaluation.slm_share)
    metrics = ", ".join(evaluation.gaps)
    if evaluation.verdict is Verdict.NO_BASELINE:
        return f"routing cannot be judged on {track}: the hosted model passes no row, so hosted-only has nothing to match"
    if evaluation.accepted == 0:
        n = evaluation.n
        return (
            f"routing does not help on {track}: the validator accepts none of the SLM's {n} answers; every request goes to the hosted model"
        )
    if evaluation.verdict is Verdict.SLM_MATCHES:
        return f"the SLM can serve {share} of {track} traffic with {metrics} within delta {delta} of hosted-only"
    if evaluation.verdict is Verdict.SLM_TRAILS:
        worse = ", ".join(m for m, gap in evaluation.gaps.items() if gap.interval.low > delta)
        wrong = evaluation.accepted - round((evaluation.precision or 0.0) * evaluation.accepted)
        return (
            f"routing does not help on {track}: with the SLM serving {share} of traffic the routed system trails hosted-only "
            f"by more than delta {delta} on {worse}, beyond the rows' noise "
            f"({wrong} of the {evaluation.accepted} accepted SLM answers are wrong)"
        )
    open_metrics = [m for m, gap in evaluation.gaps.items() if gap.interval.low <= delta < gap.interval.high]
    needed = [n for m in open_metrics if (n := rows_needed(evaluation.gaps[m], delta)) is not None]
    tail = f"; about {max(needed)} rows would resolve it (80 % power)" if needed else ""
    return (
        f"inconclusive on {track}: the SLM would serve {share} of traffic, but the rows cannot tell whether the routed system "
        f"is within delta {delta} of hosted-only on {', '.join(open_metrics) or metrics}{tail}"
    )


def evaluation_json(evaluation: RoutingEvaluation) -> dict[str, Any]:
    return {
        "n": evaluation.n,
        "slm_share": round(evaluation.slm_share, 6),
        "slm_rows": evaluation.accepted,
        "hosted_rows": evaluation.n - evaluation.accepted,
        "precision": None if evaluation.precision is None else round(evaluation.precision, 6),
        "verdict": evaluation.verdict.value,
        "verdict_text": verdict_text(evaluation),
        "rates": {
            system: {
                m: {"rate": round(passed / evaluation.n, 6) if evaluation.n else None, "passed": passed, "ci95": iv.as_list()}
                for m, (passed, iv) in by_metric.items()
            }
            for system, by_metric in evaluation.rates.items()
        },
        "gap_to_hosted_only": {
            m: {
                "gap": round(gap.gap, 6),
                "ci95": gap.interval.as_list(),
                "only_hosted": gap.only_a,
                "only_routed": gap.only_b,
                "mcnemar_p": float(f"{gap.mcnemar_p:.3g}"),
            }
            for m, gap in evaluation.gaps.items()
        },
        "rejections": evaluation.rejection_counts(),
        "rejection_cost": evaluation.rejection_cost(),
        "routes": {row.id: {"route": row.route, "reason": row.validation.reason} for row in evaluation.rows},
    }
