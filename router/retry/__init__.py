"""Retry decisions: after a failed authorization attempt, retry at T or stop, and why.

This package decides; it never runs anything. The scheduler (`router.payments.scheduler`) acts on its answer.
Strategies: `none`, `scheduled`, `heuristic` (`strategies.py`), `smart` (`smart.py`: the population model in
`outcomes.py` over the calendar features of `calendar.py`, each card's payday rhythm in `rhythm.py`, calibrated
chances in `calibration.py`); `best_available` resolves to `smart` once it has learned enough of the decline class
or for insufficient funds, else `heuristic`. The guards every strategy obeys live in `planner.py`, the network
caps in `caps.py`, the card groups (one probe, the rest after it) in `groups.py`; `explain.py` shows a stored
payment's retries and why.
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
