"""payroute: a multiprocessor payments orchestration router for off-session card payments.

from router import Router
async with await Router.open("config/routing.yaml", store="sqlite:///payroute.db") as router:
    payment = await router.create_payment({...})
    print(payment.id, payment.status, payment.to_dict())
"""

from router.api import Router
from router.clock import ManualClock, SystemClock
from router.config.loader import ConfigError
from router.config.schema import Config
from router.errors import PayrouteError
from router.model.objects import (
    ApiObject,
    Event,
    OffSessionPayment,
    PaymentAttemptRecord,
    PaymentRecord,
    TestClock,
)

__all__ = [
    "ApiObject",
    "Config",
    "ConfigError",
    "Event",
    "ManualClock",
    "OffSessionPayment",
    "PaymentAttemptRecord",
    "PaymentRecord",
    "PayrouteError",
    "Router",
    "SystemClock",
    "TestClock",
]
