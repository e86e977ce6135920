"""Optional CAPTCHA on public forms: Cloudflare Turnstile, hCaptcha or Google reCAPTCHA,
always verified server-side (the widget's token is worthless until the provider says so).

A form names the provider, its public site key and the NAME of its secret; the secret is
looked up when a submission arrives, from the engine's secrets provider
(``EngineOptions.secrets``; default the environment variable ``FLOWMONKEY_SECRET_<NAME>``),
so it is never stored with the form nor shown by the API. ``configure_captcha(app, ...)``
can swap the provider and the verification URLs (tests point them at a local stand-in
verifier).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from flowmonkey.handlers.secrets import EnvSecretProvider, SecretProvider

__all__ = [
    "PROVIDERS",
    "CaptchaSettings",
    "captcha_settings",
    "check_config",
    "configure_captcha",
    "verify",
]

PROVIDERS: dict[str, dict[str, str]] = {
    "turnstile": {
        "verify": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
        "field": "cf-turnstile-response",
        "script": "https://challenges.cloudflare.com/turnstile/v0/api.js",
        "widget": "cf-turnstile",
    },
    "hcaptcha": {
        "verify": "https://api.hcaptcha.com/siteverify",
        "field": "h-captcha-response",
        "script": "https://js.hcaptcha.com/1/api.js",
        "widget": "h-captcha",
    },
    "recaptcha": {
        "verify": "https://www.google.com/recaptcha/api/siteverify",
        "field": "g-recaptcha-response",
        "script": "https://www.google.com/recaptcha/api.js",
        "widget": "g-recaptcha",
    },
}
_SECRET_NAME = re.compile(r"^[A-Z0-9_]{1,100}$")


@dataclass(slots=True)
class CaptchaSettings:
    """Where secrets come from and where tokens are verified."""

    secrets: SecretProvider | None = None
    """``None``: the engine's provider (``EngineOptions.secrets``, else the environment)."""
    verify_urls: dict[str, str] = field(default_factory=dict)
    """Per provider, instead of the provider's public URL."""
    timeout: float = 5.0


def configure_captcha(app: Any, settings: CaptchaSettings) -> None:
    """Use ``settings`` for the CAPTCHA checks of ``app``."""
    app.state.captcha = settings


def captcha_settings(app: Any) -> CaptchaSettings:
    """The app's settings (defaults when never configured)."""
    found = getattr(app.state, "captcha", None)
    return found if isinstance(found, CaptchaSettings) else CaptchaSettings()


def check_config(config: Any) -> list[dict[str, str]]:
    """Problems of a form's ``captcha`` object."""
    if not isinstance(config, dict):
        return [{"path": "captcha", "message": "an object {provider, site_key, secret}"}]
    problems = []
    if config.get("provider") not in PROVIDERS:
        problems.append({"path": "captcha.provider", "message": f"one of {', '.join(PROVIDERS)}"})
    if not isinstance(config.get("site_key"), str) or not config.get("site_key"):
        problems.append({"path": "captcha.site_key", "message": "the provider's public site key"})
    if not isinstance(config.get("secret"), str) or not _SECRET_NAME.match(config["secret"]):
        problems.append(
            {
                "path": "captcha.secret",
                "message": "the NAME of a secret (A-Z, 0-9, _), not the secret",
            }
        )
    extra = sorted(set(config) - {"provider", "site_key", "secret"})
    problems += [{"path": f"captcha.{k}", "message": "unknown field"} for k in extra]
    return problems


async def verify(
    settings: CaptchaSettings,
    config: dict[str, str],
    token: str | None,
    remote_ip: str | None,
    engine_secrets: SecretProvider | None = None,
) -> str | None:
    """``None`` when the provider accepts ``token``; else why not."""
    if not token:
        return "Complete the CAPTCHA."
    secrets = settings.secrets or engine_secrets or EnvSecretProvider()
    secret = await secrets.get_secret(config["secret"])
    if not secret:
        return "The CAPTCHA cannot be checked right now (no secret configured)."
    provider = config["provider"]
    url = settings.verify_urls.get(provider, PROVIDERS[provider]["verify"])
    data = {"secret": secret, "response": token}
    if remote_ip:
        data["remoteip"] = remote_ip
    try:
        async with httpx.AsyncClient(timeout=settings.timeout) as client:
            answer = await client.post(url, data=data)
        ok = answer.status_code == 200 and answer.json().get("success") is True
    except (httpx.HTTPError, ValueError):
        return "The CAPTCHA cannot be checked right now; try again."
    return None if ok else "The CAPTCHA was not accepted; try again."
