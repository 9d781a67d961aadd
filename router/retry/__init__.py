"""Retry decisions: after a failed authorization attempt, retry at T or stop, and why.

This package decides; it never runs anything. The scheduler acts on its answer.
"""

from router.retry.planner import RetryDecision, RetryPlanner

__all__ = ["RetryDecision", "RetryPlanner"]
