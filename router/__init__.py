"""payroute: a multiprocessor payments orchestration router for off-session card payments.

from router import Router
async with await Router.open("config/routing.yaml", store="sqlite:///payroute.db") as router:
    payment = await router.create_payment({...})
"""

from router.api import Router
from router.clock import ManualClock, SystemClock
from router.config.loader import ConfigError
from router.config.schema import Config
from router.errors import PayrouteError

__all__ = ["Config", "ConfigError", "ManualClock", "PayrouteError", "Router", "SystemClock"]
