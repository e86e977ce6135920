"""Secrets: ``{{ secrets.NAME }}`` in step configs, resolved at run time, never stored.

A ``SecretProvider`` maps names to values. The engine resolves the references of a
step's config just before its handler runs and redacts every resolved value as ``***``
from what the attempt produces (output, error, ``ctx.set`` writes), so a value never
reaches the context, history, events or the store.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson

__all__ = [
    "REDACTED",
    "SECRET_NOT_FOUND",
    "DictSecretProvider",
    "EnvSecretProvider",
    "SecretNotFound",
    "SecretProvider",
    "has_secret_refs",
    "redact",
    "resolve_secrets",
    "secret_names",
]

REDACTED = "***"
"""What a secret's value is replaced with wherever it would surface."""
SECRET_NOT_FOUND = "SECRET_NOT_FOUND"
"""Failure code of a step whose config names a secret the provider does not know."""

_REF = re.compile(r"\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_MARK = "{{"


@runtime_checkable
class SecretProvider(Protocol):
    """Where secret values come from (environment, a file, a vault...)."""

    async def get_secret(self, name: str) -> str | None:
        """The value of secret ``name``, or ``None`` when there is none."""
        ...


class EnvSecretProvider:
    """Secrets from environment variables ``<prefix><NAME>`` (the engine's default).

    ``{{ secrets.api_token }}`` reads ``FLOWMONKEY_SECRET_API_TOKEN`` (names are
    upper-cased). The environment is read at each resolution, so a rotated value is
    picked up by the next step.
    """

    def __init__(
        self, prefix: str = "FLOWMONKEY_SECRET_", environ: Mapping[str, str] | None = None
    ) -> None:
        self.prefix = prefix
        self._environ = environ if environ is not None else os.environ

    async def get_secret(self, name: str) -> str | None:
        """``environ[prefix + NAME.upper()]`` or ``None``."""
        return self._environ.get(self.prefix + name.upper())

    def __repr__(self) -> str:
        return f"EnvSecretProvider(prefix={self.prefix!r})"


class DictSecretProvider:
    """Secrets from a mapping (tests), or from a JSON/``.env``-style file."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> DictSecretProvider:
        """Read a JSON object file or ``NAME=value`` lines (``#`` comments allowed).

        Raises:
            ValueError: the file is neither form.
            OSError: the file cannot be read.
        """
        text = Path(path).read_text(encoding="utf-8")
        if text.lstrip().startswith("{"):
            data = orjson.loads(text)
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise ValueError(f"{path}: a secrets file must map names to strings")
            return cls(data)
        values: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"{path}:{number}: expected NAME=value")
            values[name.strip()] = value.strip()
        return cls(values)

    async def get_secret(self, name: str) -> str | None:
        """The value of ``name`` (exact, then upper-cased), or ``None``."""
        found = self._values.get(name)
        return found if found is not None else self._values.get(name.upper())

    def __repr__(self) -> str:
        return f"DictSecretProvider({sorted(self._values)!r})"  # names only, never values


class SecretNotFound(LookupError):
    """A config names a secret the provider does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f'secret "{name}" is not defined')
        self.name = name


def has_secret_refs(value: Any) -> bool:
    """True when ``value`` (a config: dicts, lists, strings) holds a ``{{ secrets.X }}``."""
    if isinstance(value, str):
        return _MARK in value and _REF.search(value) is not None
    if isinstance(value, Mapping):
        return any(has_secret_refs(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_secret_refs(v) for v in value)
    return False


def secret_names(value: Any) -> set[str]:
    """Every secret name referenced in ``value``."""
    if isinstance(value, str):
        return set(_REF.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(secret_names(v) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(secret_names(v) for v in value))
    return set()


async def resolve_secrets(config: Any, provider: SecretProvider) -> tuple[Any, list[str]]:
    """``config`` with every ``{{ secrets.NAME }}`` replaced, and the values used.

    Raises:
        SecretNotFound: a referenced secret has no value.
    """
    values: dict[str, str] = {}
    for name in sorted(secret_names(config)):
        value = await provider.get_secret(name)
        if value is None:
            raise SecretNotFound(name)
        values[name] = value

    def sub(item: Any) -> Any:
        if isinstance(item, str):
            return _REF.sub(lambda m: values[m.group(1)], item) if _MARK in item else item
        if isinstance(item, Mapping):
            return {k: sub(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [sub(v) for v in item]
        return item

    return sub(config), sorted({v for v in values.values() if v})


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every occurrence of a secret replaced by ``***`` (keys included).

    Longer secrets go first so that a secret containing another is redacted whole.
    """
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return value

    def text(s: str) -> str:
        for secret in ordered:
            if secret in s:
                s = s.replace(secret, REDACTED)
        return s

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return text(item)
        if isinstance(item, Mapping):
            return {text(str(k)) if isinstance(k, str) else k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(value)
