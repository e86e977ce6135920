"""The web dashboard at ``/ui/``: server-rendered pages over the same engine and keys.

``install_ui(app, settings)`` mounts it (``create_app`` does when ``ApiSettings.ui``):
Jinja2 templates, the vendored htmx and Mermaid under ``/ui/static/``, and the page
routers. Pages read and act through the engine with the signed-in key's tenant and
scopes, exactly as the REST API does.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from flowmonkey.api.state import ApiSettings
from flowmonkey.api.ui.render import HERE, templates
from flowmonkey.api.ui.session import UiSigner

__all__ = ["install_ui"]


def install_ui(app: FastAPI, settings: ApiSettings) -> None:
    """Mount the dashboard on ``app``."""
    from flowmonkey.api.ui import pages_executions, pages_other, pages_triggers

    app.state.flowmonkey_ui_signer = UiSigner(settings.ui_secret)
    app.state.flowmonkey_ui_templates = templates()
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.include_router(pages_executions.router)
    app.include_router(pages_triggers.router)
    app.include_router(pages_other.router)  # last: it ends with the catch-all 404 page
