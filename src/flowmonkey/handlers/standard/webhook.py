"""``webhook``: wait for a callback on a resume URL (optionally announced by a POST).

The step creates a resume token and waits; meanwhile its ``outputKey`` holds
``{"callback_url": "<base_url>/api/v1/resume/<token>"}`` so later steps, other systems
or people can see where to call. A callback (``POST`` of that URL, or
``engine.resume(id, data, token=...)``) resumes the step with its body, which replaces
that value. The wait is bounded by ``timeout`` and then follows ``onTimeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from flowmonkey.durations import parse_duration
from flowmonkey.handlers.context import HandlerContext
from flowmonkey.handlers.standard.common import DURATION_SCHEMA, StandardHandler, duration_problems
from flowmonkey.handlers.standard.common import services_of as _services
from flowmonkey.handlers.standard.http import (
    REQUEST_PROPERTIES,
    HttpConfig,
    build_request,
    perform,
    request_problems,
)
from flowmonkey.model.result import Result

__all__ = ["RESUME_PATH", "WEBHOOK_NO_BASE_URL", "WebhookConfig", "WebhookHandler"]

RESUME_PATH = "/api/v1/resume/"
WEBHOOK_NO_BASE_URL = "WEBHOOK_NO_BASE_URL"
DEFAULT_WAIT = timedelta(days=7)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    """The config of a ``webhook`` step."""

    timeout: timedelta | None = None
    """How long to wait for the callback (then ``onTimeout``); default: the engine's
    wait timeout. The token expires with it."""
    url: str | None = None
    """When set, the callback URL is POSTed here (``http`` rules, SSRF guard included)."""
    request: dict[str, Any] = field(default_factory=dict)
    """``headers``, ``json`` (merged with ``callback_url``), ``request_timeout``..."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WebhookConfig:
        """Build from a (schema-checked) config mapping.

        Raises:
            ValueError: ``timeout`` is not a duration.
        """
        timeout = config.get("timeout")
        return cls(
            timeout=parse_duration(timeout, field="timeout") if timeout is not None else None,
            url=config.get("url"),
            request={k: v for k, v in config.items() if k not in ("timeout", "url")},
        )


_PROPS = {k: REQUEST_PROPERTIES[k] for k in ("method", "url", "headers", "query", "json")}


class WebhookHandler(StandardHandler):
    """Wait for a callback; expose (and optionally POST) the URL that resumes the step."""

    type = "webhook"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            **_PROPS,
            "json": {"type": "object"},
            "timeout": DURATION_SCHEMA,
            "request_timeout": DURATION_SCHEMA,
        },
        "additionalProperties": False,
    }

    def validate_config(self, config: Mapping[str, Any]) -> list[str]:
        """Durations and the announcement URL."""
        problems = duration_problems(config, "timeout", "request_timeout")
        if "url" in config:
            problems += [p for p in request_problems(config) if not p.startswith("timeout")]
        return problems

    async def execute(self, ctx: HandlerContext) -> Result:
        """Create the token, announce it if asked, then wait."""
        try:
            cfg = WebhookConfig.from_config(ctx.config)
        except ValueError as exc:
            return Result.failure("INPUT_ERROR", str(exc), retryable=False)
        services = _services(ctx)
        if services.base_url is None:
            return Result.failure(
                WEBHOOK_NO_BASE_URL,
                "webhook steps need the public base URL of the API: set "
                "EngineOptions.base_url (serve --base-url)",
                retryable=False,
            )
        token = ctx.create_resume_token(cfg.timeout or DEFAULT_WAIT)
        callback_url = f"{services.base_url}{RESUME_PATH}{token}"
        if cfg.url is not None:
            announced = await self._announce(ctx, cfg, callback_url)
            if announced is not None:
                return announced
        return Result.wait(reason="waiting for a callback", output={"callback_url": callback_url})

    async def _announce(
        self, ctx: HandlerContext, cfg: WebhookConfig, callback_url: str
    ) -> Result | None:
        request = cfg.request
        payload = {
            "callback_url": callback_url,
            "execution_id": ctx.execution_id,
            "step_id": ctx.step.id,
            **(request.get("json") or {}),
        }
        http_cfg = HttpConfig.from_config(
            {
                "url": cfg.url,
                "method": request.get("method", "POST"),
                "headers": request.get("headers") or {},
                "query": request.get("query") or {},
                "json": payload,
                "timeout": request.get("request_timeout", 30_000),
            }
        )
        spec = build_request(http_cfg, ctx)
        if isinstance(spec, Result):
            return spec
        result = await perform(ctx, spec)
        return None if result.is_success else result
