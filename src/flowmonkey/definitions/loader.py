"""Load flow definitions from files, JSON/YAML text or dicts; dump them back.

Both shapes are accepted: FlowMonkey's (``id``, ``version``, ``initialStepId``, ``steps``)
and a Vyuh graph (``code``, ``nodes``, ``edges``), compiled by ``graph_import``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from flowmonkey.definitions.graph_import import compile_graph, is_graph
from flowmonkey.definitions.validate import raise_for_issues, validate_parsed
from flowmonkey.errors import FlowValidationError, ValidationIssue
from flowmonkey.model.flow import Flow

__all__ = [
    "FLOW_FILE_SUFFIXES",
    "check_flow",
    "dump_flow",
    "parse_yaml_text",
    "load_flow",
    "load_flows",
    "parse_flow",
]

FLOW_FILE_SUFFIXES = (".json", ".yaml", ".yml")

FlowSource = str | os.PathLike[str] | Mapping[str, Any]


def parse_yaml_text(text: str) -> Any:
    """Parse YAML flow text safely (timestamps stay strings); ``yaml.YAMLError`` if bad."""
    import yaml

    return yaml.load(text, Loader=_flow_yaml_loader())


@functools.cache
def _flow_yaml_loader() -> Any:
    """Safe YAML loader that keeps timestamps as strings (flow files are JSON-shaped).

    Built on first use, so ``import flowmonkey`` does not pay for PyYAML.
    """
    import yaml

    class FlowYamlLoader(yaml.SafeLoader):
        pass

    FlowYamlLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return FlowYamlLoader


def _fail(source: str, message: str) -> FlowValidationError:
    return FlowValidationError(None, [ValidationIssue("", message)], f"{source}: {message}")


def _parse_text(text: str, source: str, *, json_only: bool = False) -> Any:
    json_error: json.JSONDecodeError | None = None
    if json_only or text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if json_only:
                where = f"{source}:{exc.lineno}:{exc.colno}"
                raise _fail(where, f"invalid JSON: {exc.msg}") from None
            json_error = exc  # maybe YAML flow style ({id: x}); report JSON's error if not
    import yaml

    try:
        return yaml.load(text, Loader=_flow_yaml_loader())
    except yaml.YAMLError as exc:
        if json_error is not None:
            where = f"{source}:{json_error.lineno}:{json_error.colno}"
            raise _fail(where, f"invalid JSON: {json_error.msg}") from None
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise _fail(where, f"invalid YAML: {problem}") from None


def _looks_like_path(text: str) -> bool:
    if "\n" in text or text.lstrip().startswith(("{", "[")):
        return False
    if text.strip().lower().endswith(FLOW_FILE_SUFFIXES):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # e.g. a long one-line YAML text: "file name too long"
        return False


def _read_source(source: FlowSource) -> tuple[Any, str]:
    """Return the raw data and a name for messages."""
    if isinstance(source, Mapping):
        return source, "<dict>"
    if isinstance(source, os.PathLike) or _looks_like_path(str(source)):
        path = Path(os.fspath(source))
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise _fail(str(path), "cannot read flow file: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(str(path), f"cannot read flow file: {exc}") from None
        return _parse_text(text, str(path), json_only=path.suffix.lower() == ".json"), str(path)
    if isinstance(source, str):
        return _parse_text(source, "<string>"), "<string>"
    raise TypeError(f"cannot load a flow from {type(source).__name__}")


def parse_flow(source: FlowSource) -> Flow:
    """Parse a flow (file path, JSON/YAML text or dict) WITHOUT validating it.

    Raises:
        FlowValidationError: unreadable file, bad JSON/YAML (file and line in the
            message), or a definition with parts that cannot be parsed (every such
            part is listed; ``check_flow`` also validates the rest).
    """
    data, name = _read_mapping(source)
    try:
        return compile_graph(data) if is_graph(data) else Flow.from_dict(data)
    except FlowValidationError as exc:
        raise _named(exc, name) from None


def _read_mapping(source: FlowSource) -> tuple[Mapping[str, Any], str]:
    data, name = _read_source(source)
    if not isinstance(data, Mapping):
        raise _fail(name, "a flow definition must be an object (a mapping)")
    return data, name


def _named(exc: FlowValidationError, name: str) -> FlowValidationError:
    """``exc`` with the source name in its message (dicts have none)."""
    if name == "<dict>":
        return exc
    return FlowValidationError(exc.flow_id, exc.issues, f"{name}: {exc.message}")


def check_flow(
    source: FlowSource, *, handler_types: Collection[str] | None = None
) -> tuple[Flow, list[ValidationIssue]]:
    """Parse a flow leniently and validate it, without raising for invalid definitions.

    Every problem is returned at once: fields that cannot be parsed (a ``timeout`` that
    is not a duration, a ``config`` that is not an object, a numeric ``version``...),
    each at its own path, then the validation issues of the parts that did parse (see
    ``validate_parsed``). The returned flow has unparseable parts left at their defaults;
    use it only when no issue is an error.

    Raises:
        FlowValidationError: the source cannot be read at all (missing file, bad
            JSON/YAML, not an object, a Vyuh graph that does not compile).
    """
    data, name = _read_mapping(source)
    parse_issues: list[ValidationIssue] = []
    if is_graph(data):
        try:
            flow = compile_graph(data)
        except FlowValidationError as exc:
            raise _named(exc, name) from None
    else:
        flow, parse_issues = Flow.parse(data)
    return flow, validate_parsed(flow, parse_issues, handler_types=handler_types)


def load_flow(source: FlowSource, *, handler_types: Collection[str] | None = None) -> Flow:
    """Load and fully validate a flow from a file path, JSON/YAML text or a dict.

    Args:
        source: a ``.json``/``.yaml``/``.yml`` path, JSON or YAML text, or a mapping in
            the FlowMonkey shape or the Vyuh graph shape.
        handler_types: when given, unknown handler types are errors too.

    Raises:
        FlowValidationError: (code ``INVALID_FLOW``) with every issue in ``.issues``:
            parse problems (each at its field's path) and validation problems together.
    """
    flow, issues = check_flow(source, handler_types=handler_types)
    name = None if isinstance(source, Mapping) else _source_name(source)
    raise_for_issues(flow.id or None, issues, source=name)
    return flow


def _source_name(source: str | os.PathLike[str]) -> str:
    if isinstance(source, os.PathLike) or _looks_like_path(str(source)):
        return os.fspath(source)
    return "<string>"


def load_flows(
    paths: Iterable[str | os.PathLike[str]], *, handler_types: Collection[str] | None = None
) -> list[Flow]:
    """Load several flow files; a directory contributes its ``*.json``/``*.yaml``/``*.yml``
    files (sorted by name, not recursive)."""
    flows: list[Flow] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in FLOW_FILE_SUFFIXES)
            flows.extend(load_flow(p, handler_types=handler_types) for p in files)
        else:
            flows.append(load_flow(path, handler_types=handler_types))
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
