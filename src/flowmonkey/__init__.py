"""flowmonkey: a durable workflow engine for Python.

A flow is a versioned graph of steps; handlers do the work; every execution's state is
persisted after each step (SQLite by default, PostgreSQL to scale out), so work survives
crashes, waits for days, and spreads over many workers.
"""

from __future__ import annotations

from flowmonkey.definitions.builder import NEXT, FlowBuilder
from flowmonkey.definitions.loader import dump_flow, load_flow
from flowmonkey.definitions.registry import FlowRegistry
from flowmonkey.engine.engine import Engine
from flowmonkey.engine.options import ContextLimits, EngineOptions
from flowmonkey.engine.results import (
    CancelResult,
    CreateResult,
    RunResult,
    SimulationResult,
    StepResult,
)
from flowmonkey.errors import FlowMonkeyError, FlowValidationError
from flowmonkey.handlers.base import Handler, handler
from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.registry import HandlerRegistry
from flowmonkey.model.events import Event
from flowmonkey.model.execution import Execution, ExecutionStatus, StepRecord, Token
from flowmonkey.model.flow import Flow, Step
from flowmonkey.model.records import Task
from flowmonkey.model.result import Result
from flowmonkey.stores import MemoryStore, open_store
from flowmonkey.stores.sqlite import SqliteStore

__version__ = "0.1.0"

__all__ = [
    "NEXT",
    "CancelResult",
    "ContextLimits",
    "CreateResult",
    "Engine",
    "EngineOptions",
    "Event",
    "Execution",
    "ExecutionStatus",
    "Flow",
    "FlowBuilder",
    "FlowMonkeyError",
    "FlowRegistry",
    "FlowValidationError",
    "Handler",
    "HandlerContext",
    "HandlerRegistry",
    "MemoryStore",
    "Result",
    "RunResult",
    "SimulationResult",
    "SqliteStore",
    "Step",
    "StepRecord",
    "StepResult",
    "Task",
    "Token",
    "dump_flow",
    "handler",
    "load_flow",
    "open_store",
]
