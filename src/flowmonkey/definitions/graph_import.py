"""Compile a Vyuh-style graph (``code``, ``nodes``, ``edges``) into a :class:`Flow`.

Mapping (see SEMANTICS.md "Graph features"): the start node's single target becomes
``initialStepId``; edges into end nodes become ``null`` transitions; tasks become handler
steps (``type = config.schemaType``, ``outputKey = storeAs``); ``userTask``, ``signalWait``,
``timerEvent`` and ``subflow`` become the built-in steps; ``oneOf`` becomes ``switch``;
``allOf``/``anyOf`` forks become ``parallel`` and their joins ``join`` (mode ``any`` for
``anyOf``). Edges with ``sourcePortId`` (or ``port``) become ``transitions.ports``.
The result is not validated here; ``load_flow`` does that.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from flowmonkey.definitions import builtins
from flowmonkey.definitions.expressions import expression_problem
from flowmonkey.definitions.graph import fork_joins
from flowmonkey.errors import FlowValidationError, ValidationIssue
from flowmonkey.model.flow import Flow, Step, Transitions

__all__ = ["compile_graph", "is_graph", "translate_expression"]

_TASK_TYPES = ("serviceTask", "task")
_SIGNAL_TYPES = ("signalWait", "signalEvent", "signal")
_TIMER_TYPES = ("timerEvent", "timerWait")
_GATEWAYS = ("oneOf", "allOf", "anyOf")
_FORK_SUFFIX = "__fork"

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<num>\d+(?:\.\d+)?)
      | (?P<op>==|!=|<=|>=|&&|\|\||[<>!().\[\]-])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)""",
    re.VERBOSE,
)
_WORDS = {"true": "`true`", "false": "`false`", "null": "`null`",
          "and": "&&", "or": "||", "not": "!"}  # fmt: skip


def is_graph(data: Mapping[str, Any]) -> bool:
    """True when ``data`` is a Vyuh graph rather than a FlowMonkey flow."""
    return "nodes" in data or "edges" in data or ("code" in data and "steps" not in data)


def translate_expression(expression: str) -> str:
    """Translate a simple Vyuh condition (``a.b == 'x' && n > 5``) into JMESPath.

    Strings become raw-string literals, numbers/true/false/null backtick literals and
    ``and``/``or``/``not`` the JMESPath operators; paths are kept.

    Raises:
        ValueError: the expression cannot be translated into valid JMESPath.
    """
    out: list[str] = []
    pos = 0
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if match is None:
            raise ValueError(f"unsupported character {expression[pos]!r} at offset {pos}")
        text, kind = match.group(), match.lastgroup
        pos = match.end()
        if kind == "str":
            body = text[1:-1]
            if text[0] == '"':
                body = body.replace('\\"', '"')
            out.append("'" + re.sub(r"(?<!\\)'", r"\\'", body) + "'")
        elif kind == "num":
            if out and out[-1] == "[":
                out.append(text)  # a list index stays bare
            elif out and out[-1] == "." and text.isdigit():
                out[-1] = f"[{text}]"  # dot-path index: items.0 -> items[0]
            elif out and out[-1] == "-":
                out[-1] = f"`-{text}`"
            else:
                out.append(f"`{text}`")
        elif kind == "word":
            out.append(_WORDS.get(text, text))
        else:
            out.append(text)
    result = "".join(out)
    problem = expression_problem(result)
    if problem is not None:
        raise ValueError(f"not translatable to JMESPath ({problem})")
    return result


class _Compiler:
    """Holds the graph while it is compiled; collects every problem before raising."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.issues: list[ValidationIssue] = []
        self.nodes: dict[str, Mapping[str, Any]] = {}
        self.node_index: dict[str, int] = {}
        self.outgoing: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
        self.incoming: dict[str, int] = {}
        self.steps: dict[str, Step] = {}
        self.any_forks: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.issues.append(ValidationIssue(path, message, "error"))

    # --- structure --------------------------------------------------------------------

    def read_nodes(self) -> None:
        nodes = self.data.get("nodes")
        if not isinstance(nodes, list) or not nodes:
            self.error("nodes", "a graph needs a non-empty list of nodes")
            return
        for i, node in enumerate(nodes):
            if not isinstance(node, Mapping):
                self.error(f"nodes[{i}]", "a node must be an object")
                continue
            node_id, node_type = node.get("id"), node.get("type")
            if not isinstance(node_id, str) or not node_id:
                self.error(f"nodes[{i}].id", "Required")
                continue
            if not isinstance(node_type, str) or not node_type:
                self.error(f"nodes[{i}].type", f'node "{node_id}": type is required')
                continue
            if node_id in self.nodes:
                self.error(f"nodes[{i}].id", f'duplicate node id "{node_id}"')
                continue
            self.nodes[node_id] = node
            self.node_index[node_id] = i
            self.outgoing[node_id] = []
            self.incoming[node_id] = 0

    def read_edges(self) -> None:
        edges = self.data.get("edges", [])
        if not isinstance(edges, list):
            self.error("edges", "edges must be a list")
            return
        for i, edge in enumerate(edges):
            if not isinstance(edge, Mapping):
                self.error(f"edges[{i}]", "an edge must be an object")
                continue
            name = edge.get("id", i)
            ok = True
            for end in ("sourceNodeId", "targetNodeId"):
                ref = edge.get(end)
                if not isinstance(ref, str) or ref not in self.nodes:
                    self.error(f"edges[{i}].{end}", f'edge "{name}": unknown node {ref!r}')
                    ok = False
            if ok:
                self.outgoing[edge["sourceNodeId"]].append((i, edge))
                self.incoming[edge["targetNodeId"]] += 1

    def node_path(self, node_id: str) -> str:
        return f"nodes[{self.node_index[node_id]}]"

    def target(self, edge_index: int, edge: Mapping[str, Any]) -> str | None:
        """The step id an edge leads to; ``None`` for an end node."""
        target: str = edge["targetNodeId"]
        target_type = self.nodes[target]["type"]
        if target_type == "end":
            return None
        if target_type == "start":
            self.error(
                f"edges[{edge_index}].targetNodeId", "an edge cannot lead into the start node"
            )
        return target

    # --- nodes ------------------------------------------------------------------------

    def compile(self) -> Flow:
        self.read_nodes()
        self.read_edges()
        initial = self.initial_step()
        for node_id, node in self.nodes.items():
            node_type = node["type"]
            if node_type in ("start", "end"):
                if node_type == "end" and self.outgoing[node_id]:
                    self.error(self.node_path(node_id), f'end node "{node_id}" has outgoing edges')
                continue
            if node_type in _GATEWAYS:
                self.gateway(node_id, node)
            elif node_type in _TASK_TYPES + _SIGNAL_TYPES + _TIMER_TYPES + ("userTask", "subflow"):
                self.activity(node_id, node)
            else:
                self.error(
                    f"{self.node_path(node_id)}.type",
                    f'node "{node_id}": unsupported node type "{node_type}"',
                )
        code = self.data.get("code")
        if not isinstance(code, str) or not code:
            self.error("code", "Required: the workflow code (becomes the flow id)")
        version = self.version()
        if self.issues:
            raise FlowValidationError(code if isinstance(code, str) else None, self.issues)
        extra = {k: self.data[k] for k in ("metadata", "tags") if self.data.get(k)}
        flow = Flow(
            id=str(code),
            version=version,
            name=self.data.get("name"),
            description=self.data.get("description"),
            initial_step_id=initial,
            steps=self.steps,
            extra=extra,
        )
        return self.any_joins(flow)

    def version(self) -> str:
        version = self.data.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int | str) or version == "":
            self.error("version", f"must be an integer or a version string, got {version!r}")
            return ""
        return f"{version}.0.0" if isinstance(version, int) else version

    def initial_step(self) -> str:
        starts = [n for n, node in self.nodes.items() if node["type"] == "start"]
        if len(starts) != 1:
            self.error("nodes", f"a graph needs exactly one start node, found {len(starts)}")
            return ""
        out = self.outgoing[starts[0]]
        if len(out) != 1:
            self.error(
                self.node_path(starts[0]),
                f'start node "{starts[0]}" needs exactly one outgoing edge, found {len(out)}',
            )
            return ""
        target = self.target(*out[0])
        if target is None:
            self.error(self.node_path(starts[0]), "the start node leads straight to an end node")
            return ""
        return target

    def transitions(self, node_id: str, *, error_port: str | None = None) -> Transitions:
        on_success: str | None = None
        on_failure: str | None = None
        ports: dict[str, str | None] = {}
        unported = 0
        for i, edge in self.outgoing[node_id]:
            if edge.get("condition") is not None:
                self.error(
                    f"edges[{i}].condition",
                    f'edge "{edge.get("id", i)}": conditions are only supported on edges '
                    "leaving a oneOf gateway",
                )
            port = edge.get("sourcePortId") or edge.get("port")
            target = self.target(i, edge)
            if port is None:
                unported += 1
                on_success = target
            elif port == error_port:
                on_failure = target
            elif port in ports:
                self.error(f"edges[{i}]", f'node "{node_id}": port "{port}" has several edges')
            else:
                ports[str(port)] = target
        if unported > 1:
            self.error(
                self.node_path(node_id),
                f'node "{node_id}" has {unported} outgoing edges without a port; '
                "use an allOf gateway to fork",
            )
        return Transitions(on_success=on_success, on_failure=on_failure, ports=ports)

    def activity(self, node_id: str, node: Mapping[str, Any]) -> None:
        node_type = node["type"]
        raw = node.get("config") or {}
        if not isinstance(raw, Mapping):
            self.error(
                f"{self.node_path(node_id)}.config", f'node "{node_id}": config must be an object'
            )
            raw = {}
        cfg = dict(raw)
        output_key = cfg.pop("storeAs", None)
        error_port = None
        if node_type in _TASK_TYPES:
            step_type = cfg.pop("schemaType", None)
            if not isinstance(step_type, str) or not step_type:
                self.error(
                    f"{self.node_path(node_id)}.config.schemaType",
                    f'task node "{node_id}" needs config.schemaType (the handler type)',
                )
                step_type = ""
        elif node_type == "userTask":
            step_type = builtins.USER_TASK
            for old, new in (("assignToRole", "role"), ("assignToUser", "assignee")):
                if old in cfg:
                    cfg[new] = cfg.pop(old)
        elif node_type in _SIGNAL_TYPES:
            step_type = builtins.WAIT_FOR_SIGNAL
            cfg.pop("schemaType", None)
        elif node_type in _TIMER_TYPES:
            step_type = builtins.DELAY
            cfg = self.timer_config(node_id, cfg)
        else:
            step_type = builtins.SUBFLOW
            cfg, error_port = self.subflow_config(node_id, cfg)
        self.steps[node_id] = Step(
            id=node_id,
            type=step_type,
            config=cfg,
            output_key=output_key,
            transitions=self.transitions(node_id, error_port=error_port),
            name=node.get("name"),
            description=node.get("description"),
        )

    def timer_config(self, node_id: str, cfg: dict[str, Any]) -> dict[str, Any]:
        cfg.pop("schemaType", None)
        timer_type = cfg.pop("timerType", None)
        date_time = cfg.pop("dateTime", None)
        expression = cfg.pop("dateTimeExpression", None)
        if timer_type == "duration" or (timer_type is None and "duration" in cfg):
            if cfg.get("duration") is None:
                self.error(f"{self.node_path(node_id)}.config.duration",
                           f'timer node "{node_id}": duration is required')  # fmt: skip
            return cfg
        cfg.pop("duration", None)
        if date_time is not None:
            cfg["until"] = date_time
        elif isinstance(expression, str) and expression:
            cfg["until"] = expression if expression.startswith("${") else f"${{{expression}}}"
        else:
            self.error(
                f"{self.node_path(node_id)}.config",
                f'timer node "{node_id}" needs duration, dateTime or dateTimeExpression',
            )
        return cfg

    def subflow_config(
        self, node_id: str, cfg: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        cfg.pop("schemaType", None)
        flow_id = cfg.pop("workflowCode", None) or cfg.pop("workflowId", None)
        cfg.pop("workflowId", None)
        if not isinstance(flow_id, str) or not flow_id:
            self.error(f"{self.node_path(node_id)}.config.workflowCode",
                       f'subflow node "{node_id}" needs workflowCode')  # fmt: skip
        out: dict[str, Any] = {"flowId": flow_id}
        version = cfg.pop("version", None)
        if isinstance(version, int) and not isinstance(version, bool):
            out["version"] = f"{version}.0.0"
        elif version is not None:
            out["version"] = version
        mode = cfg.pop("executionMode", None)
        if mode in ("async", "asynchronous", "fireAndForget"):
            out["wait"] = False
        strategy = cfg.get("errorStrategy")
        out.update(cfg)
        return out, ("error" if strategy == "route" else None)

    # --- gateways ---------------------------------------------------------------------

    def gateway(self, node_id: str, node: Mapping[str, Any]) -> None:
        node_type = node["type"]
        if node_type == "oneOf":
            self.switch(node_id, node)
            return
        incoming, outgoing = self.incoming[node_id], self.outgoing[node_id]
        for i, edge in outgoing:
            if edge.get("condition") is not None or edge.get("sourcePortId") or edge.get("port"):
                self.error(f"edges[{i}]", f'edges leaving {node_type} "{node_id}" cannot have '
                           "conditions or ports")  # fmt: skip
        if incoming <= 1 and len(outgoing) <= 1:
            self.error(
                self.node_path(node_id),
                f'{node_type} gateway "{node_id}" is neither a fork (several outgoing edges) '
                "nor a join (several incoming edges)",
            )
            return
        name = node.get("name")
        if incoming > 1:
            mode = "any" if node_type == "anyOf" else "all"
            on_success: str | None
            if len(outgoing) > 1:
                on_success = node_id + _FORK_SUFFIX
                if on_success in self.nodes:
                    self.error(self.node_path(node_id), f'node id "{on_success}" is reserved')
            else:
                on_success = self.target(*outgoing[0]) if outgoing else None
            self.steps[node_id] = Step(
                id=node_id, type=builtins.JOIN, config={"mode": mode}, name=name,
                transitions=Transitions(on_success=on_success),
            )  # fmt: skip
            if len(outgoing) <= 1:
                return
            node_id = on_success or node_id
        branches: list[str] = []
        for i, edge in outgoing:
            target = self.target(i, edge)
            if target is None:
                self.error(f"edges[{i}]", f'a branch of {node_type} "{node_id}" cannot go '
                           "straight to an end node")  # fmt: skip
            else:
                branches.append(target)
        self.steps[node_id] = Step(
            id=node_id, type=builtins.PARALLEL, config={"branches": branches}, name=name
        )
        if node_type == "anyOf":
            self.any_forks.append(node_id)

    def switch(self, node_id: str, node: Mapping[str, Any]) -> None:
        cases: list[dict[str, Any]] = []
        config: dict[str, Any] = {}
        for i, edge in self.outgoing[node_id]:
            target = self.target(i, edge)
            condition = edge.get("condition")
            if isinstance(condition, str):
                condition = {"schemaType": "condition.expression", "expression": condition}
            kind = condition.get("schemaType") if isinstance(condition, Mapping) else None
            if condition is None or kind == "condition.always":
                if "default" in config:
                    self.error(f"edges[{i}]", f'oneOf "{node_id}" has several default edges')
                config["default"] = target
                continue
            expression = condition.get("expression") if isinstance(condition, Mapping) else None
            if kind not in (None, "condition.expression") or not isinstance(expression, str):
                self.error(
                    f"edges[{i}].condition",
                    f'edge "{edge.get("id", i)}": unsupported condition {kind!r} '
                    "(use condition.expression or condition.always)",
                )
                continue
            try:
                when = translate_expression(expression)
            except ValueError as exc:
                self.error(
                    f"edges[{i}].condition.expression",
                    f'edge "{edge.get("id", i)}": cannot translate {expression!r}: {exc}',
                )
                continue
            cases.append({"when": when, "goto": target})
        self.steps[node_id] = Step(
            id=node_id,
            type=builtins.SWITCH,
            config={"cases": cases, **config},
            name=node.get("name"),
            description=node.get("description"),
        )

    def any_joins(self, flow: Flow) -> Flow:
        """Give the joins of ``anyOf`` forks mode ``any``."""
        if not self.any_forks:
            return flow
        steps = dict(flow.steps)
        reached = fork_joins(flow)
        for fork in self.any_forks:
            for join in set().union(*reached.get(fork, [])):
                step = steps[join]
                steps[join] = dataclasses.replace(step, config={**step.config, "mode": "any"})
        return dataclasses.replace(flow, steps=steps)


def compile_graph(data: Mapping[str, Any]) -> Flow:
    """Compile a Vyuh graph definition into a :class:`Flow` (not yet validated).

    Raises:
        FlowValidationError: the graph cannot be compiled (unknown node types, broken
            edges, several starts...); every problem is listed, each naming its node/edge.
    """
    return _Compiler(data).compile()
