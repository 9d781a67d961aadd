"""Retry decisions: after a failed authorization attempt, retry at T or stop, and why.

This package decides; it never runs anything. The scheduler (`router.payments.scheduler`) acts on its answer.
Strategies: `none`, `scheduled`, `heuristic` (`strategies.py`), `smart` (`smart.py`); `best_available`
resolves to `smart` once it has enough data for the decline class, else `heuristic`. The guards every
strategy obeys live in `planner.py`, the network caps in `caps.py`.
"""

from router.retry.planner import RetryDecision, RetryHistory, RetryPlanner
from router.retry.smart import OutcomeModel, SmartStrategy
from router.retry.strategies import Heuristic, NoRetry, RetryContext, Scheduled

__all__ = [
    "Heuristic",
    "NoRetry",
    "OutcomeModel",
    "RetryContext",
    "RetryDecision",
    "RetryHistory",
    "RetryPlanner",
    "Scheduled",
    "SmartStrategy",
]
