"""Which inputs change the answer: a tornado of +/- 50 % on each input, and break-even points."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from workbench.costs.pricebook import PriceBook
from workbench.costs.scenarios import SCENARIOS, LifecyclePlan, Usage, horizon_totals, monthly_costs
from workbench.errors import CostError

SHARES = {"cdn_hit_ratio", "accelerated_share", "spot_share", "failed_upload_share"}
WHOLE = {"images_per_project", "tile_generations", "retention_months", "product_objects_per_project"}


def _scaled(usage: Usage, name: str, factor: float) -> Usage:
    value = getattr(usage, name) * factor
    if name in SHARES:
        value = min(value, 1.0)
    if name in WHOLE:
        value = int(round(value))
    return usage.replace(**{name: value})


def tornado(usage: Usage, book: PriceBook, scenario: str, plan: LifecyclePlan | None = None, swing: float = 0.5,
            inputs: Iterable[str] | None = None, scenarios: Iterable[str] | None = None) -> pd.DataFrame:
    """For each input scaled by ``1 - swing`` and ``1 + swing``: ``scenario``'s total over the horizon, and the
    cheapest scenario then. Rows sorted by how far the input moves the total (the widest bar first);
    ``flips`` says whether the cheapest scenario changes.
    """
    if not 0 < swing < 1:
        raise CostError(f"swing must be between 0 and 1, not {swing}")
    names = list(scenarios or SCENARIOS)
    base_totals = horizon_totals(monthly_costs(usage, book, plan, names))
    base_cheapest = base_totals.index[0]
    rows = []
    for name in inputs or usage.numeric_inputs():
        if getattr(usage, name) == 0:
            continue  # +/- 50 % of nothing is nothing
        row: dict[str, object] = {"input": name, "base_value": getattr(usage, name)}
        for side, factor in (("low", 1 - swing), ("high", 1 + swing)):
            changed = _scaled(usage, name, factor)
            totals = horizon_totals(monthly_costs(changed, book, plan, names))
            row[f"{side}_value"] = getattr(changed, name)
            row[f"{side}_total"] = float(totals[scenario])
            row[f"{side}_cheapest"] = totals.index[0]
        row["spread"] = abs(float(row["high_total"]) - float(row["low_total"]))
        row["flips"] = row["low_cheapest"] != base_cheapest or row["high_cheapest"] != base_cheapest
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("spread", ascending=False).reset_index(drop=True)
    table.attrs.update(scenario=scenario, base_total=float(base_totals[scenario]), base_cheapest=base_cheapest)
    return table


def break_even(usage: Usage, book: PriceBook, name: str, first: str, second: str, low: float, high: float,
               plan: LifecyclePlan | None = None, tolerance: float = 1e-3) -> float | None:
    """The value of input ``name`` in [low, high] where ``first`` and ``second`` cost the same over the horizon
    (bisection on the difference); ``None`` when one is cheaper across the whole range."""
    def gap(value: float) -> float:
        changed = usage.replace(**{name: int(round(value)) if name in WHOLE else value})
        totals = horizon_totals(monthly_costs(changed, book, plan, [first, second]))
        return float(totals[first] - totals[second])

    if low >= high:
        raise CostError(f"break-even range needs low < high, not {low} >= {high}")
    g_low, g_high = gap(low), gap(high)
    if g_low == 0:
        return low
    if (g_low > 0) == (g_high > 0):
        return None
    while high - low > tolerance * max(1.0, abs(high)):
        middle = (low + high) / 2
        g_middle = gap(middle)
        if (g_middle > 0) == (g_low > 0):
            low, g_low = middle, g_middle
        else:
            high = middle
    return (low + high) / 2
