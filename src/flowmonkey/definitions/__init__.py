"""Flow definitions: validation, loading (FlowMonkey files and Vyuh graphs), the registry,
the Python builder and Mermaid rendering."""

from __future__ import annotations

from flowmonkey.definitions.builder import NEXT as NEXT
from flowmonkey.definitions.builder import FlowBuilder as FlowBuilder
from flowmonkey.definitions.builtins import BUILTIN_STEP_TYPES as BUILTIN_STEP_TYPES
from flowmonkey.definitions.builtins import step_edges as step_edges
from flowmonkey.definitions.builtins import step_exits as step_exits
from flowmonkey.definitions.graph_import import compile_graph as compile_graph
from flowmonkey.definitions.loader import dump_flow as dump_flow
from flowmonkey.definitions.loader import load_flow as load_flow
from flowmonkey.definitions.loader import load_flows as load_flows
from flowmonkey.definitions.loader import parse_flow as parse_flow
from flowmonkey.definitions.mermaid import to_mermaid as to_mermaid
from flowmonkey.definitions.registry import FlowRegistry as FlowRegistry
from flowmonkey.definitions.validate import validate_flow as validate_flow

__all__ = [
    "BUILTIN_STEP_TYPES",
    "NEXT",
    "FlowBuilder",
    "FlowRegistry",
    "compile_graph",
    "dump_flow",
    "load_flow",
    "load_flows",
    "parse_flow",
    "step_edges",
    "step_exits",
    "to_mermaid",
    "validate_flow",
]
