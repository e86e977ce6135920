"""Templates, security headers and HTML error pages of the dashboard.

Every dashboard route uses ``UiRoute``: an engine error or API ``Problem`` raised by a
page becomes an HTML page with the same status (404 for unknown or other tenants' ids),
``SignInNeeded`` becomes a redirect to the sign-in form, and every answer carries the
Content-Security-Policy (no inline or eval'd scripts).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from flowmonkey import errors
from flowmonkey.api.problems import Problem, validation_problem
from flowmonkey.api.ui.session import SignInNeeded, UiSession, sign_in_url

__all__ = ["CSP", "UiRoute", "page", "templates"]

HERE = Path(__file__).parent

CSP = (
    "default-src 'self'; script-src 'self'; "
    # Mermaid writes <style> into the SVGs it draws; scripts stay 'self' only.
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _pretty(value: Any) -> str:
    return orjson.dumps(
        value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
    ).decode()


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def templates() -> Environment:
    """The dashboard's Jinja2 environment (autoescaped: every value renders as text)."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        auto_reload=False,
    )
    env.filters["pretty"] = _pretty
    env.filters["when"] = _when
    env.filters["ms"] = _ms
    return env


def page(
    request: Request,
    name: str,
    session: UiSession | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    """Render template ``name`` for the signed-in person."""
    env: Environment = request.app.state.flowmonkey_ui_templates
    html = env.get_template(name).render(
        request=request, session=session, path=request.url.path, **values
    )
    return HTMLResponse(html, status_code=status)


def _error_page(request: Request, problem: Problem) -> Response:
    session = getattr(request.state, "ui_session", None)
    return page(request, "error.html", session, problem.status, problem=problem)


class UiRoute(APIRoute):
    """A dashboard route: HTML errors, sign-in redirects, security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded as exc:
                response = RedirectResponse(sign_in_url(exc.next_url), status_code=303)
                if exc.reason:
                    response.set_cookie(
                        "fm_flash", exc.reason[:200].encode("ascii", "replace").decode(),
                        max_age=60, path="/ui/", httponly=True, samesite="lax",
                    )  # fmt: skip
            except Problem as exc:
                response = _error_page(request, exc)
            except RequestValidationError as exc:
                response = _error_page(request, validation_problem(exc))
            except errors.FlowMonkeyError as exc:
                response = _error_page(request, Problem.from_error(exc))
            for name, value in _HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return guarded
