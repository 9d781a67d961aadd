"""Processor adapters: one module per processor, all speaking the contract in `adapters.base`."""

from adapters.base import (
    UNKNOWN,
    AdapterSettings,
    AuthorizationRequest,
    CancelRequest,
    CaptureRequest,
    CardInfo,
    LookupAnswer,
    LookupRequest,
    Outcome,
    OutcomeKind,
    ProcessorAdapter,
)

__all__ = [
    "UNKNOWN",
    "AdapterSettings",
    "AuthorizationRequest",
    "CancelRequest",
    "CaptureRequest",
    "CardInfo",
    "LookupAnswer",
    "LookupRequest",
    "Outcome",
    "OutcomeKind",
    "ProcessorAdapter",
]
