"""Declaring handlers: the ``@handler`` decorator, the ``Handler`` base class, metadata.

Neither registers anything anywhere: ``@handler`` attaches a ``HandlerMetadata`` to the
function (``__flowmonkey_handler__``) and returns the function unchanged; a
``HandlerRegistry`` reads it when the function is registered.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar

from flowmonkey.durations import parse_duration
from flowmonkey.handlers.schema import is_schema_type, json_schema_for

if TYPE_CHECKING:
    from flowmonkey.handlers.context import HandlerContext

__all__ = [
    "METADATA_ATTR",
    "Handler",
    "HandlerMetadata",
    "SchemaSpec",
    "build_metadata",
    "check_type_name",
    "class_namespace",
    "ensure_one_argument",
    "handler",
    "is_async_callable",
]

METADATA_ATTR = "__flowmonkey_handler__"
"""Attribute on a decorated function that holds its ``HandlerMetadata``."""

AnyType: TypeAlias = type[Any]
SchemaSpec: TypeAlias = Mapping[str, Any] | type[Any] | None
"""A JSON Schema dict, a dataclass or TypedDict class (converted), or ``None``."""
TimeoutSpec: TypeAlias = timedelta | float | str | None

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerMetadata:
    """What a handler declares about itself; descriptive, plus the schemas it enforces."""

    type: str
    """The step ``type`` this handler runs."""
    name: str
    """Human-readable name (defaults to the type)."""
    description: str | None = None
    """Defaults to the first paragraph of the function's or class's docstring."""
    category: str | None = None
    """Free text, e.g. ``control``, ``data``, ``external``, ``ai``, ``utility``."""
    input_schema: dict[str, Any] | None = None
    """JSON Schema that ``ctx.input`` must match (checked before the handler runs)."""
    config_schema: dict[str, Any] | None = None
    """JSON Schema that ``ctx.config`` must match (checked before the handler runs)."""
    output_schema: dict[str, Any] | None = None
    """JSON Schema of the success output; documentation only."""
    timeout: timedelta | None = None
    """Default step timeout for this handler (a step's own ``timeout`` wins)."""
    retryable: bool = True
    """False: failures of this handler are never retried (descriptive for the engine)."""
    version: str | None = None
    tags: tuple[str, ...] = ()
    is_async: bool = False
    """True when the handler is an ``async def`` (sync handlers run in a thread pool)."""
    input_type: AnyType | None = field(default=None, compare=False, repr=False)
    """The dataclass/TypedDict ``input_schema`` came from; ``ctx.input`` is converted to it."""
    config_type: AnyType | None = field(default=None, compare=False, repr=False)
    """The dataclass/TypedDict ``config_schema`` came from; ``ctx.config`` is converted."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape used in ``HandlerRegistry.manifest()`` (camelCase keys)."""
        return {
            "type": self.type,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "configSchema": self.config_schema,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "timeoutMs": (
                None if self.timeout is None else round(self.timeout.total_seconds() * 1000)
            ),
            "retryable": self.retryable,
            "version": self.version,
            "tags": list(self.tags),
            "isAsync": self.is_async,
        }


def _schema(
    spec: SchemaSpec, what: str, localns: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any] | None, AnyType | None]:
    """``(json_schema, python_type)`` for a schema argument."""
    if spec is None:
        return None, None
    if isinstance(spec, Mapping):
        return dict(spec), None
    if is_schema_type(spec):
        return json_schema_for(spec, localns=localns), spec
    raise TypeError(f"{what} must be a JSON Schema dict, a dataclass or a TypedDict, got {spec!r}")


def _timeout(value: TimeoutSpec, type_: str) -> timedelta | None:
    """Numbers are seconds (as in ``Result.wait(delay=...)``); strings like ``"30s"``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f'handler "{type_}": timeout must be a duration, not a boolean')
    if isinstance(value, int | float):
        value = timedelta(seconds=value)
    delta = parse_duration(value, field=f'handler "{type_}" timeout')
    if delta <= timedelta(0):
        raise ValueError(f'handler "{type_}": timeout must be positive, got {delta}')
    return delta


def class_namespace(cls: AnyType) -> dict[str, Any]:
    """Classes defined in the bodies of ``cls`` and its bases, by name.

    Nested classes may name their siblings (``items: list[Item]``); string annotations
    are resolved in the module, so these names are added to the lookup.
    """
    return {k: v for c in reversed(cls.__mro__) for k, v in vars(c).items() if inspect.isclass(v)}


def _doc_summary(obj: object) -> str | None:
    # ``__doc__`` itself, not ``inspect.getdoc``: that would inherit ``Handler``'s docstring.
    raw = getattr(obj, "__doc__", None)
    doc = inspect.cleandoc(raw) if isinstance(raw, str) else None
    if not doc:
        return None
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip() or None


def is_async_callable(fn: object) -> bool:
    """True for ``async def`` functions, bound methods, partials and async ``__call__``."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want the method, not callable()
    return call is not None and inspect.iscoroutinefunction(call)


def check_type_name(type_: object) -> str:
    """Return ``type_`` if it is a usable handler type, else raise ``TypeError``."""
    if not isinstance(type_, str) or not type_.strip():
        raise TypeError(f"a handler type must be a non-empty string, got {type_!r}")
    return type_


def build_metadata(
    type_: str,
    *,
    source: object,
    name: str | None = None,
    description: str | None = None,
    category: str | None = None,
    input_schema: SchemaSpec = None,
    config_schema: SchemaSpec = None,
    output_schema: SchemaSpec = None,
    timeout: TimeoutSpec = None,
    retryable: bool = True,
    version: str | None = None,
    tags: tuple[str, ...] | list[str] = (),
    is_async: bool = False,
    localns: Mapping[str, Any] | None = None,
) -> HandlerMetadata:
    """Normalise declared metadata (schemas from types, timeout to ``timedelta``)."""
    check_type_name(type_)
    in_schema, in_type = _schema(input_schema, "input_schema", localns)
    cfg_schema, cfg_type = _schema(config_schema, "config_schema", localns)
    out_schema, _ = _schema(output_schema, "output_schema", localns)
    return HandlerMetadata(
        type=type_,
        name=name or type_,
        description=description if description is not None else _doc_summary(source),
        category=category,
        input_schema=in_schema,
        config_schema=cfg_schema,
        output_schema=out_schema,
        timeout=_timeout(timeout, type_),
        retryable=bool(retryable),
        version=version,
        tags=tuple(tags),
        is_async=is_async,
        input_type=in_type,
        config_type=cfg_type,
    )


def ensure_one_argument(fn: Callable[..., Any], type_: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and some C callables have no signature; trust them
    try:
        sig.bind(object())
    except TypeError:
        raise TypeError(
            f'handler "{type_}": {getattr(fn, "__qualname__", fn)!r} must accept exactly one '
            f"positional argument (ctx), its signature is {sig}"
        ) from None


def handler(
    type: str,
    *,
    name: str | None = None,
    description: str | None = None,
    category: str | None = None,
    input_schema: SchemaSpec = None,
    config_schema: SchemaSpec = None,
    output_schema: SchemaSpec = None,
    timeout: TimeoutSpec = None,
    retryable: bool = True,
    version: str | None = None,
    tags: tuple[str, ...] | list[str] = (),
) -> Callable[[F], F]:
    """Mark a function ``def f(ctx)`` / ``async def f(ctx)`` as the handler of ``type``.

    The function may return a ``Result`` or any value (meaning ``Result.success(value)``).
    ``input_schema``/``config_schema`` may be JSON Schema dicts (validated before each
    call) or dataclass/TypedDict classes (validated, then passed to the handler as
    instances). ``timeout`` is a ``timedelta``, seconds, or a string like ``"30s"``.
    The function is returned unchanged, with ``__flowmonkey_handler__`` set; nothing is
    registered until ``HandlerRegistry.register(fn)``.
    """
    if callable(type):
        raise TypeError('@handler needs the step type: write @handler("my-type")')
    # Built now, so a bad schema or timeout fails at the decorator line, not later.
    template = build_metadata(
        type,
        source=None,
        name=name,
        description=description,
        category=category,
        input_schema=input_schema,
        config_schema=config_schema,
        output_schema=output_schema,
        timeout=timeout,
        retryable=retryable,
        version=version,
        tags=tags,
    )

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f'@handler("{type}") must decorate a function, got {fn!r}')
        if inspect.isclass(fn):
            raise TypeError(
                f'@handler("{type}") decorates functions; subclass Handler for class handlers'
            )
        ensure_one_argument(fn, type)
        meta = replace(
            template,
            description=description if description is not None else _doc_summary(fn),
            is_async=is_async_callable(fn),
        )
        setattr(fn, METADATA_ATTR, meta)
        return fn

    return decorate


class Handler(abc.ABC):
    """Base class for class-style handlers.

    Set ``type`` (required) and optionally ``name``, ``description``, ``category``,
    ``timeout``, ``retryable``, ``version``, ``tags``, ``output_schema``. Declare nested
    dataclasses ``Config`` and/or ``Input`` to have ``ctx.config`` / ``ctx.input``
    validated before ``execute`` runs and passed in as instances of them. The registry
    creates ONE instance (with no arguments) and calls its ``execute`` for every step,
    possibly concurrently: keep per-step state in locals, not on ``self``.
    """

    type: ClassVar[str]
    name: ClassVar[str | None] = None
    description: ClassVar[str | None] = None
    category: ClassVar[str | None] = None
    timeout: ClassVar[TimeoutSpec] = None
    retryable: ClassVar[bool] = True
    version: ClassVar[str | None] = None
    tags: ClassVar[tuple[str, ...]] = ()
    output_schema: ClassVar[SchemaSpec] = None
    Config: ClassVar[AnyType | None] = None
    """Typed step config (a dataclass or TypedDict); ``None`` leaves ``ctx.config`` as is."""
    Input: ClassVar[AnyType | None] = None
    """Typed step input (a dataclass or TypedDict); ``None`` leaves ``ctx.input`` as is."""

    @abc.abstractmethod
    def execute(self, ctx: HandlerContext) -> Any:
        """Run one step: return a ``Result`` or a value (sync or ``async def``)."""

    def validate_config(self, config: Mapping[str, Any]) -> list[str]:
        """Extra static checks of a step's config (the flow validator may call this).

        Return one message per problem; the default finds none. Schema checks of
        ``Config`` are done by the registry and need not be repeated here.
        """
        return []

    def describe(self) -> HandlerMetadata:
        """Build this handler's metadata from its class attributes."""
        type_ = getattr(self, "type", None)
        if not isinstance(type_, str) or not type_.strip():
            raise TypeError(f"Handler class {type(self).__qualname__} must set `type`")
        localns = class_namespace(type(self))
        return build_metadata(
            type_,
            source=type(self),
            name=self.name,
            description=self.description,
            category=self.category,
            input_schema=self.Input,
            config_schema=self.Config,
            output_schema=self.output_schema,
            timeout=self.timeout,
            retryable=self.retryable,
            version=self.version,
            tags=self.tags,
            is_async=is_async_callable(self.execute),
            localns=localns,
        )
