"""Warnings for valid input that will be served differently than written.

Today: requests longer than the model's context window. The planner caps prompts (and outputs) at
the window, so their cost and latency would be understated silently; every output (solve's table,
JSON `warnings`, the TUI status line, `validate`) says how many requests that affects, and
`solve --strict` refuses to plan them.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from planner.schema import ModelSpec, Scenario

MIN_SHARE = 0.001  # a tail share below 0.1 % of requests is not worth a warning
_QUADRATURE = 512  # output-length nodes for P(prompt + output > window)
_N = NormalDist()


def _sigma(d, window: float) -> float:
    """Shape of a length distribution; a mean is fitted under its cap (its `max`, else the window)."""
    from planner.lengths import length_sigma, served_cap

    return length_sigma(d.median, d.p90, d.mean, served_cap(d.max, window))


def _above(x: float, median: float, sigma: float) -> float:
    """P(L > x) for a log-normal length with this median and shape (a fixed length when sigma = 0)."""
    if x <= 0:
        return 1.0
    if sigma == 0.0:
        return 1.0 if median > x else 0.0
    return 1.0 - _N.cdf((math.log(x) - math.log(median)) / sigma)


def beyond_window(scenario: Scenario, model: ModelSpec) -> tuple[float, float]:
    """(share of requests whose prompt alone exceeds the window, share whose prompt + output does).

    Prompts follow the scenario's log-normal *before* any cap (a `max` at or under the window is the
    truncation this reports); outputs are capped at their own `max` (a generation limit)."""
    w = scenario.workload
    window = float(model.max_context)
    s_in = _sigma(w.input_tokens, window)
    s_out = _sigma(w.output_tokens, window)
    out_cap = float(w.output_tokens.max or math.inf)
    prompt = _above(window, w.input_tokens.median, s_in)
    total = 0.0
    for i in range(_QUADRATURE):
        u = (i + 0.5) / _QUADRATURE
        out = w.output_tokens.median * (math.exp(s_out * _N.inv_cdf(u)) if s_out else 1.0)
        total += _above(window - min(out, out_cap), w.input_tokens.median, s_in)
    return prompt, max(total / _QUADRATURE, prompt)


def scenario_warnings(scenario: Scenario, model: ModelSpec, *, short: bool = False) -> list[str]:
    """One line per warning; `short` fits the TUI's status line."""
    prompt, total = beyond_window(scenario, model)
    if total < MIN_SHARE:
        return []
    if short:
        return [f"{total:.1%} of requests exceed {model.id}'s {model.max_context:,}-token window (planned capped)"]
    by_prompt = f"; {prompt:.1%} by the prompt alone" if prompt >= MIN_SHARE else ""
    return [f"{total:.1%} of requests have prompt + output longer than {model.id}'s context window of "
            f"{model.max_context:,} tokens{by_prompt}: they are planned capped at the window, so their cost "
            "and latency are understated (use a longer-context model or shorter prompts)"]
