"""The cost arithmetic of the ``cost`` gate: pure functions of a price, instance counts and request rates.

With ``price`` the price of one instance-hour (USD), ``instances`` the instances behind the endpoint when it
was load-tested, ``sustainable`` the rate (requests/s) they sustained under the SLO (``load_test``'s
``load_test.sustainable_rps``) and ``expected`` the mean production traffic (requests/s)::

    hourly           = price × instances
    cost_per_1000    = hourly / (sustainable × 3600) × 1000        (at full use of what was tested)
    per_instance_rps = sustainable / instances
    needed           = max(1, ceil(expected / per_instance_rps))
    cost_per_month   = needed × price × 730                        (730 = 8760 hours / 12 months)

Every formula is computed exactly, on the decimal values as written (``repr`` of each float, as fractions),
and rounded once to a float at the end: so 1.1 / 0.1 needs 11 instances, not 12 as float division would say,
and $0.18/h over 1 req/s costs exactly $0.10 per 1,000 (float arithmetic says 0.09999999999999999, under a
$0.10 budget level). Nothing else is rounded: the gate's messages show rounded numbers, its metrics keep every
digit. A rate, price or count that is zero, negative, not finite or absent raises :class:`CostError` (never a
division by zero) — except a price of zero, which costs nothing; so does a result too large for a float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

HOURS_PER_MONTH = 730
SECONDS_PER_HOUR = 3600


class CostError(ValueError):
    """An input the arithmetic cannot use (zero or absent rate, negative price…), or a result too large."""


def _positive(name: str, value: float | None) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise CostError(f"{name} is not given")
    if not math.isfinite(value) or value <= 0:
        raise CostError(f"{name} must be a positive finite number (got {value!r})")
    return float(value)


def _price(value: float | None) -> float:
    """A price per instance-hour: zero is a price (a fleet already paid for), negative is not."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    return _positive("the price per instance-hour", value)


def _exact(value: float) -> Fraction:
    """The value as written (shortest decimal repr), as an exact fraction."""
    return Fraction(repr(float(value)))


def _float(name: str, value: Fraction | int) -> float:
    """The exact result rounded once to a float; too large for one → :class:`CostError`."""
    try:
        result = float(value)
    except OverflowError as exc:
        raise CostError(f"{name} is too large to compute") from exc
    if not math.isfinite(result):
        raise CostError(f"{name} is too large to compute")
    return result


def _hourly(price_per_hour: float, instances: int) -> Fraction:
    return _exact(_price(price_per_hour)) * \
        _exact(_positive("the instance count", instances))


def hourly_cost(price_per_hour: float, instances: int) -> float:
    """USD per hour of the tested fleet: ``price_per_hour × instances``."""
    return _float("the hourly cost", _hourly(price_per_hour, instances))


def cost_per_1000(price_per_hour: float, instances: int, sustainable_rps: float | None) -> float:
    """USD per 1,000 predictions at the sustainable rate: ``hourly / (sustainable × 3600) × 1000``."""
    rate = _exact(_positive("the sustainable rate", sustainable_rps))
    return _float("the cost per 1,000 predictions",
                  _hourly(price_per_hour, instances) / (rate * SECONDS_PER_HOUR) * 1000)


def instances_needed(expected_rps: float, sustainable_rps: float | None, instances: int) -> int:
    """Instances needed for the expected traffic: ``max(1, ceil(expected / (sustainable / instances)))``."""
    expected = _exact(_positive("the expected traffic", expected_rps))
    rate = _exact(_positive("the sustainable rate", sustainable_rps))
    count = _exact(_positive("the instance count", instances))
    return max(1, math.ceil(expected * count / rate))


def cost_per_month(price_per_hour: float, needed: int) -> float:
    """USD per month for ``needed`` instances: ``needed × price_per_hour × 730``."""
    price = _exact(_price(price_per_hour))
    if isinstance(needed, bool) or not isinstance(needed, int) or needed < 1:
        raise CostError(f"the instances needed must be a positive whole number (got {needed!r})")
    return _float("the monthly cost", needed * price * HOURS_PER_MONTH)


@dataclass(frozen=True)
class Costing:
    """Every number of one costing (``needed`` / ``per_month`` None without an expected traffic)."""

    price_per_hour: float
    instances: int
    sustainable_rps: float
    hourly: float
    per_1000: float
    per_instance_rps: float
    expected_rps: float | None
    needed: int | None
    per_month: float | None


def costing(price_per_hour: float, instances: int, sustainable_rps: float | None,
            expected_rps: float | None) -> Costing:
    """The whole costing; raises :class:`CostError` on unusable inputs (see the module docstring)."""
    rate = _positive("the sustainable rate", sustainable_rps)
    per_1000 = cost_per_1000(price_per_hour, instances, rate)
    needed = instances_needed(expected_rps, rate, instances) if expected_rps is not None else None
    return Costing(price_per_hour=float(price_per_hour), instances=int(instances), sustainable_rps=rate,
                   hourly=hourly_cost(price_per_hour, instances), per_1000=per_1000,
                   per_instance_rps=_float("the rate per instance", _exact(rate) / _exact(instances)),
                   expected_rps=expected_rps, needed=needed,
                   per_month=cost_per_month(price_per_hour, needed) if needed is not None else None)
