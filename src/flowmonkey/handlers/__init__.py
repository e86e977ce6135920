"""Handlers: the code that runs steps, and the registry that maps step types to it.

Declare a handler with ``@handler("type")`` on a function or by subclassing ``Handler``,
then ``HandlerRegistry().register(...)`` it.
"""

from __future__ import annotations

from flowmonkey.handlers.base import Handler, HandlerMetadata, handler
from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.registry import (
    HANDLERS_NOT_LOADED,
    INPUT_VALIDATION_FAILED,
    HandlerRegistry,
    RegisteredHandler,
)
from flowmonkey.handlers.schema import SchemaValidator, json_schema_for, validate

__all__ = [
    "HANDLERS_NOT_LOADED",
    "INPUT_VALIDATION_FAILED",
    "Handler",
    "HandlerContext",
    "HandlerMetadata",
    "HandlerRegistry",
    "RegisteredHandler",
    "SchemaValidator",
    "handler",
    "json_schema_for",
    "validate",
]
