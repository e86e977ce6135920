"""The README's quick start must run as written (on a temporary SQLite file)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quick_start_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code is not None, "README has no python quick start"
    script = tmp_path / "quickstart.py"
    script.write_text(code.group(1))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout and "Hello, Ada!" in done.stdout
    assert (tmp_path / "hello.db").exists()


def test_import_flowmonkey_pulls_in_no_driver_or_heavy_library() -> None:
    code = (
        "import sys, flowmonkey; bad = [m for m in ('psycopg', 'redis', 'fastapi', 'httpx',"
        " 'click', 'rich', 'jsonschema', 'yaml') if m in sys.modules]; print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
