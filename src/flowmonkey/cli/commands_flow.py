"""Commands on flow files: ``validate`` and ``graph``. They do not touch the store."""

from __future__ import annotations

import typing as t

import click

from flowmonkey.cli.errors import EXIT_FAILED, CliError
from flowmonkey.cli.options import common_options, handlers_option
from flowmonkey.cli.output import Output
from flowmonkey.cli.state import check_flow_file, get_state, load_handlers, read_flow
from flowmonkey.definitions.mermaid import to_mermaid
from flowmonkey.errors import FlowValidationError, ValidationIssue
from flowmonkey.handlers.registry import HandlerRegistry

__all__ = ["graph", "validate"]


def _check_file(
    path: str, handler_types: list[str] | None, handlers: HandlerRegistry
) -> dict[str, t.Any]:
    """Every issue of one file (a parse error is an issue too), step configs included."""
    report: dict[str, t.Any] = {"file": path, "flow_id": None, "version": None}
    try:
        flow, issues = check_flow_file(path, handler_types)
        issues = [*issues, *handlers.check_flow_configs(flow)]
    except FlowValidationError as exc:
        issues = exc.issues or [ValidationIssue("", exc.message)]
        if len(issues) == 1 and not issues[0].path:
            issues = [ValidationIssue("", exc.message)]
    else:
        report["flow_id"], report["version"] = flow.id or None, flow.version or None
    report["issues"] = [i.to_dict() for i in issues]
    report["valid"] = not any(i.severity == "error" for i in issues)
    return report


@click.command()
@click.argument("flow_files", nargs=-1, required=True, metavar="FLOW_FILE...")
@handlers_option
@common_options
def validate(flow_files: tuple[str, ...], handler_specs: tuple[str, ...]) -> None:
    """Check flow files and print every issue (path, message, severity).

    Step configs are checked against their handler's schema (the standard handlers
    and --handlers). With --handlers, step types without a handler are errors too.
    Exit 0 when no file has errors (warnings are fine), 1 otherwise.
    """
    state = get_state()
    out = Output(json_mode=state.json_output)
    handlers = load_handlers(handler_specs)  # the standard handlers, plus --handlers
    types = handlers.types() if handler_specs else None
    reports = [_check_file(path, types, handlers) for path in flow_files]
    valid = all(r["valid"] for r in reports)
    if out.json_mode:
        out.document({"valid": valid, "files": reports})
    else:
        for report in reports:
            _print_report(out, report)
    if not valid:
        raise click.exceptions.Exit(EXIT_FAILED)


def _print_report(out: Output, report: dict[str, t.Any]) -> None:
    issues = report["issues"]
    errors = sum(1 for i in issues if i["severity"] == "error")
    warnings = len(issues) - errors
    flow_key = "@".join(str(p) for p in (report["flow_id"], report["version"]) if p)
    name = f" ({flow_key})" if report["flow_id"] else ""
    if errors:
        verdict, style = f"{errors} error(s), {warnings} warning(s)", "bold red"
    elif warnings:
        verdict, style = f"valid, {warnings} warning(s)", "bold yellow"
    else:
        verdict, style = "valid", "bold green"
    out.styled([(f"{report['file']}{name}: ", "bold"), (verdict, style)])
    for issue in issues:
        severity = issue["severity"]
        out.styled(
            [(f"  {severity:<7} ", "red" if severity == "error" else "yellow"),
             (f"{issue['path'] or '<flow>'}: ", "bold"), (issue["message"], None)]
        )  # fmt: skip


@click.command()
@click.argument("flow_file", metavar="FLOW_FILE")
@common_options
def graph(flow_file: str) -> None:
    """Print FLOW_FILE as a Mermaid flowchart (missing targets are drawn dashed)."""
    state = get_state()
    out = Output(json_mode=state.json_output)
    try:
        flow = read_flow(flow_file, validate=False)
    except FlowValidationError as exc:
        raise CliError(exc.message, code=exc.code)
    mermaid = to_mermaid(flow)
    if out.json_mode:
        out.document({"flow_id": flow.id, "version": flow.version, "mermaid": mermaid})
    else:
        out.text(mermaid)
