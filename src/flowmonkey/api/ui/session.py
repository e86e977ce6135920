"""Dashboard sign-in: a signed session cookie that carries the API key, and CSRF tokens.

The cookie is ``<key, base64url>.<issued-at, unix seconds>.<HMAC-SHA256>``, HttpOnly,
SameSite=Lax, Secure on https. The key inside is checked against the store on every page
and action (``KeyChecker.check``), so revoking or expiring the key signs the person out
at once; the signature bounds the session's life (``ApiSettings.ui_session_ttl``) and
stops anyone from forging an issue time. The CSRF token of a session is an HMAC of the
cookie, sent as a hidden field of every form and compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Request
from starlette.responses import Response

from flowmonkey.api.auth import DEV_PRINCIPAL, Principal
from flowmonkey.api.deps import state_of
from flowmonkey.api.problems import Problem

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "SignInNeeded",
    "UiSession",
    "UiSigner",
    "safe_next",
    "session_of",
]

COOKIE = "fm_session"
LOGIN_COOKIE = "fm_login"
"""Double-submit token of the sign-in form (there is no session to bind it to yet)."""


class SignInNeeded(Exception):
    """No valid session: the page answers a redirect to the sign-in form."""

    def __init__(self, next_url: str, reason: str | None = None) -> None:
        super().__init__(reason or "sign in")
        self.next_url = next_url
        self.reason = reason


@dataclass(frozen=True, slots=True)
class UiSession:
    """The signed-in person: who the key is and the CSRF token their forms carry."""

    principal: Principal
    csrf: str

    @property
    def can_write(self) -> bool:
        """Whether action buttons are shown (the server checks again on each action)."""
        return self.principal.has("write")


class UiSigner:
    """Signs and reads session cookies with one secret."""

    def __init__(self, secret: str | None) -> None:
        raw = secret.encode() if secret else secrets.token_bytes(32)
        self._secret = hashlib.sha256(b"flowmonkey-ui\0" + raw).digest()

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def cookie(self, api_key: str, issued_at: int) -> str:
        """The cookie value of a new session."""
        body = f"{base64.urlsafe_b64encode(api_key.encode()).decode()}.{issued_at}"
        return f"{body}.{self._mac(body)}"

    def read(self, value: str) -> tuple[str, int] | None:
        """``(api key, issued at)`` of a well-signed cookie, else ``None``."""
        body, _, mac = value.rpartition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            return None
        encoded, _, issued = body.partition(".")
        try:
            return base64.urlsafe_b64decode(encoded.encode()).decode(), int(issued)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None

    def csrf(self, session: str) -> str:
        """The CSRF token bound to a session cookie (``"dev"`` without auth)."""
        return self._mac("csrf\0" + session)[:40]


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    if not value or not value.startswith("/ui/") or value.startswith("//") or "\\" in value:
        return "/ui/executions"
    return value


def _asked_for(request: Request) -> str:
    """The page to come back to after signing in: the one asked for, or for a form
    posted with an expired session the page the form was on (its same-origin Referer)."""
    if request.method == "GET":
        query = f"?{request.url.query}" if request.url.query else ""
        return request.url.path + query
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path.startswith("/ui/"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/ui/executions"


def signer_of(request: Request) -> UiSigner:
    """The app's cookie signer."""
    signer: UiSigner = request.app.state.flowmonkey_ui_signer
    return signer


async def session_of(request: Request) -> UiSession:
    """The signed-in person of ``request`` (``SignInNeeded`` otherwise).

    The key is looked up in the store on every call: a revoked or expired key, or a
    session older than ``ui_session_ttl``, is signed out.
    """
    cached = getattr(request.state, "ui_session", None)
    if isinstance(cached, UiSession):
        return cached
    state = state_of(request)
    signer = signer_of(request)
    if state.keys is None:  # ``serve --dev``: no sign-in, every caller is an admin
        session = UiSession(principal=DEV_PRINCIPAL, csrf=signer.csrf("dev"))
        request.state.ui_session = session
        return session
    asked = _asked_for(request)
    value = request.cookies.get(COOKIE)
    if not value:
        raise SignInNeeded(asked)
    parsed = signer.read(value)
    if parsed is None:
        raise SignInNeeded(asked, "Your session is not valid; sign in again.")
    api_key, issued = parsed
    now = state.engine.clock.now().timestamp()
    if not 0 <= now - issued < state.settings.ui_session_ttl:
        raise SignInNeeded(asked, "Your session expired; sign in again.")
    try:
        principal = await state.keys.check(api_key)
    except Problem as exc:
        raise SignInNeeded(asked, f"{exc.detail} Sign in with another key.")
    session = UiSession(principal=principal, csrf=signer.csrf(value))
    request.state.ui_session = session
    return session


def check_csrf(session: UiSession, token: str | None) -> None:
    """403 unless ``token`` is the session's CSRF token."""
    if not token or not hmac.compare_digest(token, session.csrf):
        raise Problem(403, "The form is stale or forged (CSRF token mismatch); reload the page.")


def set_session(response: Response, request: Request, value: str, max_age: int) -> None:
    """Set the session cookie (Secure when the request came over https)."""
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path="/ui/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def sign_in_url(next_url: str) -> str:
    """The sign-in page that comes back to ``next_url``."""
    return "/ui/login?next=" + quote(safe_next(next_url), safe="/")
