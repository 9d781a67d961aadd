"""Processor adapters: one module per processor, all speaking the contract in `adapters.base`."""

from adapters.base import (
    AdapterSettings,
    AuthorizationRequest,
    CancelRequest,
    CaptureRequest,
    CardInfo,
    LookupRequest,
    Outcome,
    OutcomeKind,
    ProcessorAdapter,
)

__all__ = [
    "AdapterSettings",
    "AuthorizationRequest",
    "CancelRequest",
    "CaptureRequest",
    "CardInfo",
    "LookupRequest",
    "Outcome",
    "OutcomeKind",
    "ProcessorAdapter",
]
