"""Reading a flow definition's raw data (file, JSON/YAML text, dict) within the limits.

Whatever the source, the result is plain JSON data (see ``flowmonkey.jsonvalues``): at
most ``max_bytes`` as compact JSON (ignored keys and expanded YAML aliases counted), at
most ``MAX_DEFINITION_DEPTH`` levels deep, no duplicate keys, no integers beyond 64 bits,
no lone surrogates, no NaN. Every failure is a ``FlowValidationError`` that says where.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowmonkey.errors import FlowValidationError, ValidationIssue
from flowmonkey.jsonvalues import MAX_DEFINITION_DEPTH, json_problems, printable

__all__ = ["FLOW_FILE_SUFFIXES", "FlowSource", "parse_text", "read_definition", "source_name"]

FLOW_FILE_SUFFIXES = (".json", ".yaml", ".yml")

FlowSource = str | os.PathLike[str] | Mapping[str, Any]

TEXT_FACTOR = 4
"""A file or text may be this many times ``max_bytes`` (indentation, comments); the
definition itself, as compact JSON, must fit in ``max_bytes``."""

_MAX_INT_DIGITS = 4000
"""Longer integers are refused while parsing (Python's own guard stops at 4300 digits);
shorter ones beyond 64 bits are reported with their path afterwards."""


class _DuplicateKey(ValueError):
    """A JSON object repeats a key (``json`` would silently keep the last one)."""


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f'duplicate key "{printable(key)}" (only one is allowed)')
        out[key] = value
    return out


def _json_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is beyond 64 bits")
    return int(text)


@functools.cache
def _flow_yaml_loader() -> Any:
    """Safe YAML loader for flow files: timestamps stay strings (flow files are
    JSON-shaped), duplicate keys are errors, huge integers are refused with their line.

    Built on first use, so ``import flowmonkey`` does not pay for PyYAML.
    """
    import yaml
    from yaml.constructor import ConstructorError

    class FlowYamlLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            # Checked before merge keys (<<) are flattened: an explicit key may override a
            # merged one; only keys written twice in the same mapping are an error.
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _value in node.value:
                    if not isinstance(key_node, yaml.ScalarNode):
                        continue
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node)
                    if key in seen:
                        raise ConstructorError(
                            "while constructing a mapping",
                            node.start_mark,
                            f"found duplicate key {printable(str(key))!r} "
                            "(YAML would keep only the last one)",
                            key_node.start_mark,
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_int(self, node: Any) -> Any:
            if len(str(node.value)) > _MAX_INT_DIGITS:
                raise ConstructorError(
                    None, None, "an integer this long is beyond 64 bits", node.start_mark
                )
            return super().construct_yaml_int(node)

    FlowYamlLoader.add_constructor("tag:yaml.org,2002:int", FlowYamlLoader.construct_yaml_int)
    FlowYamlLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return FlowYamlLoader


def _fail(source: str, message: str) -> FlowValidationError:
    return FlowValidationError(None, [ValidationIssue("", message)], f"{source}: {message}")


_TOO_DEEP = f"nested too deeply (the maximum is {MAX_DEFINITION_DEPTH} levels)"


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise _fail(source, f"invalid JSON: {_TOO_DEEP}") from None
    except ValueError as exc:  # a duplicate key, a huge integer
        raise _fail(source, f"invalid JSON: {exc}") from None


def _parse_text(text: str, source: str, *, json_only: bool = False) -> Any:
    json_error: json.JSONDecodeError | None = None
    if json_only or text.lstrip().startswith(("{", "[")):
        try:
            return _parse_json(text, source)
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
    except RecursionError:
        raise _fail(source, f"invalid YAML: {_TOO_DEEP}") from None
    except ValueError as exc:  # a constructor's conversion (e.g. a malformed number)
        raise _fail(source, f"invalid YAML: {exc}") from None


def parse_text(text: str, source: str, *, json_only: bool = False) -> Any:
    """JSON (or, unless ``json_only``, YAML) text as data: never read as a file path.

    Raises:
        FlowValidationError: malformed text (``source``, line and column in the message).
    """
    return _parse_text(text, source, json_only=json_only)


def _looks_like_path(text: str) -> bool:
    if "\n" in text or text.lstrip().startswith(("{", "[")):
        return False
    if text.strip().lower().endswith(FLOW_FILE_SUFFIXES):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # e.g. a long one-line YAML text: "file name too long"
        return False


def source_name(source: FlowSource) -> str:
    """A name for messages: the path, ``<string>`` or ``<dict>``."""
    if isinstance(source, Mapping):
        return "<dict>"
    if isinstance(source, os.PathLike) or _looks_like_path(str(source)):
        return printable(os.fspath(source))
    return "<string>"


def _read_file(path: Path, max_text: int) -> str:
    name = printable(str(path))
    try:
        with path.open("rb") as file:
            raw = file.read(max_text + 1)
    except FileNotFoundError:
        raise _fail(name, "cannot read flow file: no such file") from None
    except (OSError, ValueError) as exc:
        raise _fail(name, f"cannot read flow file: {exc}") from None
    if len(raw) > max_text:
        raise _fail(name, f"the file is larger than {max_text} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(name, f"cannot read flow file: {exc}") from None


def _read_source(source: FlowSource, max_bytes: int) -> tuple[Any, str]:
    """Return the raw data and a name for messages."""
    max_text = max_bytes * TEXT_FACTOR
    if isinstance(source, Mapping):
        return source, "<dict>"
    if isinstance(source, os.PathLike) or _looks_like_path(str(source)):
        path = Path(os.fspath(source))
        text = _read_file(path, max_text)
        name = printable(str(path))
        return _parse_text(text, name, json_only=path.suffix.lower() == ".json"), name
    if isinstance(source, str):
        # Characters, not bytes, so the check costs nothing; a UTF-8 character is at
        # least one byte, and the decoded definition is measured exactly afterwards.
        if len(source) > max_text:
            raise _fail("<string>", f"the text is longer than {max_text} characters")
        return _parse_text(source, "<string>"), "<string>"
    raise TypeError(f"cannot load a flow from {type(source).__name__}")


def read_definition(source: FlowSource, max_bytes: int) -> tuple[Mapping[str, Any], str]:
    """The definition's raw mapping and a name for messages.

    Raises:
        FlowValidationError: unreadable, not JSON/YAML, not an object, or not plain JSON
            within the limits (every such place is listed with its path).
    """
    data, name = _read_source(source, max_bytes)
    if not isinstance(data, Mapping):
        raise _fail(name, "a flow definition must be an object (a mapping)")
    # Fatal problems stop here; bad scalars (huge integers, NaN, lone surrogates) are
    # listed by validation with every other issue.
    problems = json_problems(data, max_depth=MAX_DEFINITION_DEPTH, max_bytes=max_bytes)
    problems = [p for p in problems if p.fatal]
    if problems:
        issues = [ValidationIssue(p.path, p.message) for p in problems]
        listed = "; ".join(f"{i.path or '<flow>'}: {i.message}" for i in issues)
        raise FlowValidationError(None, issues, f"{name}: flow is not storable JSON: {listed}")
    return data, name
