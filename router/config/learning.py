"""What success_rate learns by default, and the checks on what a config may change of it: the card-segment levels
and amount bands, the shrinkage strengths per level, the two clocks of the evidence and the health window.

They live with the config (which names them in `success_rate:`) rather than in router/routing/ (which uses them),
so the config is read and checked without importing the routing code it configures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

DIMENSIONS = ("country", "brand", "funding", "currency", "cadence", "amount", "bin", "issuer")
# Brand and funding are learned per country (level 2, strength 200: little of its own). Learned instead across every
# country at once (a processor's edge on Amex or on prepaid cards as its own, pooled), they gained nothing over
# 24 worlds of benchmarks/bench_simulation.py (+0.04 +/- 0.09 points): after ten hours at 1,000 payments an hour
# the pooled estimates' standard errors (0.07-0.17 logit) were as large as the world's effects (sd 0.18 for
# brand, 0.12 for funding), and they ranked processors little better than chance.
DEFAULT_LEVELS: tuple[tuple[str, ...], ...] = (
    ("country",),
    ("country", "brand", "funding"),
    ("country", "brand", "funding", "currency", "cadence", "amount"),
    ("country", "brand", "funding", "currency", "cadence", "amount", "issuer", "bin"),
)
DEFAULT_AMOUNT_BANDS = (1_000, 5_000, 20_000, 100_000)

# Per level, coarse to fine: the processor on every route (toward every processor's rate on the route), this
# route, then the segment levels. Small where levels differ most (a domestic acquirer: country), large where they
# rarely do. The first is 30: acquirers' overall rates differ by a few points (pq / 30 ~ a 6-point spread at
# 85%), so four unlucky first answers (2 of 4) no longer put one 25 points behind its peers for hours, which
# starved its segments of the tries that would show where it is best (benchmarks/bench_simulation.py). The
# country's is 3: a domestic acquirer's edge (five to ten points) shows on a few dozen of the country's answers
# instead of hundreds. So weak a prior needs the fast clock's cap (router.routing.stats.FAST_MAX_ANSWERS): while
# the fast counts held ten minutes of answers however many, a spike's estimate leaned on pre-spike answers and a
# weak country prior tipped the race toward the spiking processor.
DEFAULT_STRENGTHS = (30.0, 10.0, 3.0, 200.0, 400.0, 100.0)

DEFAULT_HALF_LIFE = timedelta(hours=6)
DEFAULT_CHANGE_HALF_LIFE = timedelta(minutes=10)
DEFAULT_CHANGE_Z = 2.5
DEFAULT_CHANGE_MIN = 8.0

# Long enough to hold a few calls of a quiet processor, short enough that a processor back from an outage is
# tried again within a minute (benchmarks/bench_simulation.py). The config's `success_rate.health_window`.
DEFAULT_HEALTH_WINDOW = timedelta(seconds=60)


def check_levels(levels: Sequence[Sequence[str]]) -> str | None:
    """Why these levels cannot be used (unknown dimension, not nested), or None."""
    previous: set[str] = set()
    for i, level in enumerate(levels):
        if not level:
            return f"level {i + 1} names no dimension"
        bad = [d for d in level if d not in DIMENSIONS]
        if bad:
            return f"unknown dimension {bad[0]!r} (known: {', '.join(DIMENSIONS)})"
        if len(set(level)) != len(level):
            return f"level {i + 1} names a dimension twice"
        if not previous <= set(level):
            missing = sorted(previous - set(level))
            return f"level {i + 1} must keep every dimension of the level before it (missing {', '.join(missing)})"
        if set(level) == previous:
            return f"level {i + 1} adds no dimension to the level before it"
        previous = set(level)
    return None
