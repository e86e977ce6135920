"""Load flow definitions from files, JSON/YAML text or dicts; dump them back.

Both shapes are accepted: FlowMonkey's (``id``, ``version``, ``initialStepId``, ``steps``)
and a Vyuh graph (``code``, ``nodes``, ``edges``), compiled by ``graph_import``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from flowmonkey.definitions.graph_import import compile_graph, is_graph
from flowmonkey.definitions.source import (
    FLOW_FILE_SUFFIXES,
    FlowSource,
    read_definition,
    source_name,
)
from flowmonkey.definitions.validate import raise_for_issues, validate_parsed
from flowmonkey.errors import FlowValidationError, ValidationIssue
from flowmonkey.jsonvalues import MAX_DEFINITION_BYTES
from flowmonkey.model.flow import Flow

__all__ = [
    "FLOW_FILE_SUFFIXES",
    "MAX_DEFINITION_BYTES",
    "check_flow",
    "dump_flow",
    "load_flow",
    "load_flows",
    "parse_flow",
]


def parse_flow(source: FlowSource, *, max_bytes: int = MAX_DEFINITION_BYTES) -> Flow:
    """Parse a flow (file path, JSON/YAML text or dict) WITHOUT validating it.

    ``max_bytes`` bounds the definition as compact JSON (see ``load_flow``).

    Raises:
        FlowValidationError: unreadable file, bad JSON/YAML (file and line in the
            message), data that is not storable JSON within the limits, or a definition
            with parts that cannot be parsed (every such part is listed; ``check_flow``
            also validates the rest).
    """
    data, name = read_definition(source, max_bytes)
    try:
        return compile_graph(data) if is_graph(data) else Flow.from_dict(data)
    except FlowValidationError as exc:
        raise _named(exc, name) from None


def _named(exc: FlowValidationError, name: str) -> FlowValidationError:
    """``exc`` with the source name in its message (dicts have none)."""
    if name == "<dict>":
        return exc
    return FlowValidationError(exc.flow_id, exc.issues, f"{name}: {exc.message}")


def check_flow(
    source: FlowSource,
    *,
    handler_types: Collection[str] | None = None,
    max_bytes: int = MAX_DEFINITION_BYTES,
) -> tuple[Flow, list[ValidationIssue]]:
    """Parse a flow leniently and validate it, without raising for invalid definitions.

    Every problem is returned at once: fields that cannot be parsed (a ``timeout`` that
    is not a duration, a ``config`` that is not an object, a numeric ``version``...),
    each at its own path, then the validation issues of the parts that did parse (see
    ``validate_parsed``). The returned flow has unparseable parts left at their defaults;
    use it only when no issue is an error.

    Raises:
        FlowValidationError: the source cannot be read at all (missing file, bad
            JSON/YAML, duplicate keys, not an object, not storable JSON within the
            limits, a Vyuh graph that does not compile).
    """
    data, name = read_definition(source, max_bytes)
    parse_issues: list[ValidationIssue] = []
    if is_graph(data):
        try:
            flow = compile_graph(data)
        except FlowValidationError as exc:
            raise _named(exc, name) from None
    else:
        flow, parse_issues = Flow.parse(data)
    issues = validate_parsed(flow, parse_issues, handler_types=handler_types, max_bytes=max_bytes)
    return flow, issues


def load_flow(
    source: FlowSource,
    *,
    handler_types: Collection[str] | None = None,
    max_bytes: int = MAX_DEFINITION_BYTES,
) -> Flow:
    """Load and fully validate a flow from a file path, JSON/YAML text or a dict.

    Args:
        source: a ``.json``/``.yaml``/``.yml`` path, JSON or YAML text, or a mapping in
            the FlowMonkey shape or the Vyuh graph shape.
        handler_types: when given, unknown handler types are errors too.
        max_bytes: the largest definition accepted, as compact UTF-8 JSON with every
            key counted (also ignored ones, and YAML aliases expanded); a file or text
            may be up to 4 times as long (indentation, comments). Default 1 MiB.

    Raises:
        FlowValidationError: (code ``INVALID_FLOW``) with every issue in ``.issues``:
            parse problems (each at its field's path) and validation problems together.
            Never a ``TypeError``, ``ValueError`` or ``RecursionError`` for bad content.
    """
    flow, issues = check_flow(source, handler_types=handler_types, max_bytes=max_bytes)
    name = None if isinstance(source, Mapping) else source_name(source)
    raise_for_issues(flow.id or None, issues, source=name)
    return flow


def load_flows(
    paths: Iterable[str | os.PathLike[str]],
    *,
    handler_types: Collection[str] | None = None,
    max_bytes: int = MAX_DEFINITION_BYTES,
) -> list[Flow]:
    """Load several flow files; a directory contributes its ``*.json``/``*.yaml``/``*.yml``
    files (sorted by name, not recursive)."""
    flows: list[Flow] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in FLOW_FILE_SUFFIXES)
            flows.extend(
                load_flow(p, handler_types=handler_types, max_bytes=max_bytes) for p in files
            )
        else:
            flows.append(load_flow(path, handler_types=handler_types, max_bytes=max_bytes))
    return flows


def _plain(value: Any) -> Any:
    """Convert mappings/tuples to plain dicts/lists so JSON and YAML can dump them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dump_flow(flow: Flow, format: Literal["json", "yaml"] = "json") -> str:
    """Render ``flow`` in the FlowMonkey shape as JSON (indented) or YAML.

    ``load_flow(dump_flow(flow, f)) == flow`` for either format.
    """
    data = _plain(flow.to_dict())
    if format == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if format == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    raise ValueError(f'format must be "json" or "yaml", got {format!r}')
