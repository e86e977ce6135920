"""Regenerate docs/img/triggers_form*.png: a form rendered by flowmonkey's form renderer,
empty and after a bad submission, photographed by Debian's Chromium (headless).

    apt-get install -y chromium
    .venv/bin/python docs/img/triggers_screenshots.py
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from flowmonkey.api.form_render import fields, parse_submission, render_page, shown_values

HERE = Path(__file__).resolve().parent
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Your name", "minLength": 2},
        "email": {
            "type": "string",
            "format": "email",
            "title": "Email",
            "description": "We only use it to reply.",
        },
        "plan": {"enum": ["Starter", "Team", "Enterprise"], "title": "Plan"},
        "seats": {"type": "integer", "minimum": 1, "title": "Seats"},
        "start": {"type": "string", "format": "date", "title": "Start date"},
        "topics": {
            "type": "array",
            "title": "Topics",
            "items": {"type": "string", "enum": ["Billing", "Onboarding", "API"]},
        },
        "newsletter": {"type": "boolean", "title": "Send me the monthly newsletter"},
    },
    "required": ["name", "email", "plan"],
}
POSTED = {
    "name": ["A"],
    "email": ["ada-at-example"],
    "seats": ["two"],
    "start": ["2026-12-14"],
    "topics": ["API"],
}
CHROMIUM = [
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def main() -> None:
    page = {
        "title": "Request a demo",
        "description": "Tell us a little about your team.",
        "controls": fields(SCHEMA),
        "action": "/forms/demo",
    }
    values, errors = parse_submission(SCHEMA, None, POSTED)
    pages = {
        "triggers_form": (render_page(**page), 830),
        "triggers_form_errors": (
            render_page(**page, values=shown_values(POSTED, values, errors), errors=errors),
            1200,
        ),
    }
    with tempfile.TemporaryDirectory() as work:
        for name, (html, height) in pages.items():
            source = Path(work) / f"{name}.html"
            source.write_text(html, encoding="utf-8")
            subprocess.run(
                [
                    *CHROMIUM,
                    f"--user-data-dir={work}/profile-{name}",
                    f"--window-size=760,{height}",
                    f"--screenshot={HERE / (name + '.png')}",
                    source.as_uri(),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )


if __name__ == "__main__":
    main()
