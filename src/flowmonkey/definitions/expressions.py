"""Checks of JMESPath expressions (switch ``when``), so they fail at validation, not at run time.

Beyond "does it compile", an expression is refused when it is longer than
``MAX_EXPRESSION_LENGTH`` or nested deeper than ``MAX_EXPRESSION_DEPTH`` (the parser and
the evaluator recurse once or twice per level: a deep expression would raise
``RecursionError`` in the engine), and when it can only fail whatever the data: a slice
step of zero, an unknown function, a function called with the wrong number of arguments.
"""

from __future__ import annotations

from typing import Any

from flowmonkey.jsonvalues import printable

__all__ = ["MAX_EXPRESSION_DEPTH", "MAX_EXPRESSION_LENGTH", "expression_problem"]

MAX_EXPRESSION_LENGTH = 4096
"""Longest JMESPath expression accepted, in characters."""
MAX_EXPRESSION_DEPTH = 64
"""Deepest nesting of a JMESPath expression's syntax tree (``a.b`` is 2, ``a.b.c`` 3)."""


def expression_problem(expression: str) -> str | None:
    """What is wrong with ``expression`` (one sentence), or ``None`` when it is usable."""
    import jmespath  # lazily: only flows with expressions need it
    import jmespath.exceptions

    shown = printable(expression if len(expression) <= 80 else expression[:80] + "...")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        return f"JMESPath expression is longer than {MAX_EXPRESSION_LENGTH} characters"
    try:
        parsed = jmespath.compile(expression).parsed
    except jmespath.exceptions.JMESPathError as exc:
        detail = printable(" ".join(str(exc).split()))
        return f"invalid JMESPath expression {shown!r}: {detail}"
    except RecursionError:
        return f"JMESPath expression {shown!r} is nested too deeply"
    except ValueError as exc:  # e.g. a literal whose JSON Python refuses (a huge number)
        return f"invalid JMESPath expression {shown!r}: {printable(str(exc))}"
    problem = _tree_problem(parsed)
    return None if problem is None else f"JMESPath expression {shown!r} {problem}"


def _tree_problem(tree: dict[str, Any]) -> str | None:
    from jmespath.functions import Functions

    table: dict[str, Any] = Functions.FUNCTION_TABLE
    stack: list[tuple[Any, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict):
            continue
        if depth > MAX_EXPRESSION_DEPTH:
            return f"is nested deeper than {MAX_EXPRESSION_DEPTH} levels"
        kind = node.get("type")
        children = node.get("children") or []
        if kind == "slice" and len(children) == 3 and children[2] == 0:
            return "has a slice step of 0, which always fails"
        if kind == "function_expression":
            problem = _call_problem(table, str(node.get("value")), len(children))
            if problem is not None:
                return problem
        stack.extend((child, depth + 1) for child in children)
    return None


def _call_problem(table: dict[str, Any], name: str, count: int) -> str | None:
    entry = table.get(name)
    if entry is None:
        return f"calls the unknown function {printable(name)}()"
    signature = entry["signature"]
    variadic = bool(signature) and bool(signature[-1].get("variadic"))
    if count < len(signature) or (count > len(signature) and not variadic):
        wanted = f"at least {len(signature)}" if variadic else str(len(signature))
        return f"calls {name}() with {count} argument(s); it takes {wanted}"
    return None
