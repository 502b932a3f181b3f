"""The connector registry, fed by the ``openfuse.connectors`` entry-point group.

Built-in connectors register through the same group as third-party ones (see pyproject.toml),
so a private package adds connectors by declaring an entry point - no change here. A plugin
whose import fails is recorded with its error in :attr:`Registry.broken` and the rest keep
working (dlt's plugin loader does the same).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from openfuse_connectors.config import ConnectorConfig, validate_config
from openfuse_connectors.connector import Connector
from openfuse_connectors.errors import ConfigError, ConnectorNotFoundError, OpenFuseError, PluginError
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.loader import Loader
from openfuse_connectors.transformer import Transformer

__all__ = ["GROUP", "BrokenPlugin", "Registry", "get_registry"]

GROUP = "openfuse.connectors"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    value: str
    distribution: str | None
    error: str


@dataclass
class Registry:
    """Connectors by name. Entry points load lazily: running a pipeline imports only the
    connectors it names, while listing (``connectors``, ``broken``) loads them all."""

    _connectors: dict[str, Connector] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    _broken: dict[str, BrokenPlugin] = field(default_factory=dict)
    _pending: list[EntryPoint] = field(default_factory=list)

    @classmethod
    def from_entry_points(cls, group: str = GROUP) -> Registry:
        reg = cls()
        reg._pending = list(entry_points(group=group))
        return reg

    @property
    def connectors(self) -> dict[str, Connector]:
        self._load_all()
        return self._connectors

    @property
    def broken(self) -> dict[str, BrokenPlugin]:
        self._load_all()
        return self._broken

    def _load_all(self) -> None:
        while self._pending:
            self._load(self._pending.pop(0))

    def _load_named(self, name: str) -> None:
        for ep in [e for e in self._pending if e.name == name]:
            self._pending.remove(ep)
            self._load(ep)

    def _load(self, ep: EntryPoint) -> None:
        dist = ep.dist.name if ep.dist is not None else None
        try:
            obj = ep.load()
            conn = obj if isinstance(obj, Connector) else Connector.from_class(obj)
        except Exception as e:  # a broken plugin must never break the registry
            self._broken[ep.name] = BrokenPlugin(ep.name, ep.value, dist, f"{type(e).__name__}: {e}")
            log.warning("connector plugin %r (%s) failed to load: %s", ep.name, ep.value, e)
            return
        self.add(conn, origin=dist or ep.value)

    def add(self, conn: Connector, *, origin: str = "<code>") -> None:
        existing = self._connectors.get(conn.name)
        if existing is not None:
            # One name may be contributed in parts (a source class and a loader class).
            conn = Connector(
                conn.name,
                conn.config_model or existing.config_model,
                conn.extractor or existing.extractor,
                conn.loader or existing.loader,
                conn.transformer or existing.transformer,
                conn.required_feature or existing.required_feature,
                conn.description or existing.description,
            )
        self._connectors[conn.name] = conn
        self.origins[conn.name] = origin

    def get(self, name: str) -> Connector:
        self._load_named(name)
        if name not in self._connectors:
            self._load_all()  # an entry point may register under another name
        try:
            return self._connectors[name]
        except KeyError:
            raise ConnectorNotFoundError(
                name, list(self.connectors), {k: v.error for k, v in self.broken.items()}
            ) from None

    def _config(self, conn: Connector, config: dict[str, Any], role: str) -> ConnectorConfig:
        if conn.config_model is None:
            raise ConfigError(
                f"connector {conn.name!r} declares no config model",
                field=f"{role}.connector",
                value=conn.name,
            )
        return validate_config(conn.config_model, config, connector=conn.name, role=role)

    def extractor(self, name: str, config: dict[str, Any]) -> Extractor:
        conn = self.get(name)
        if conn.extractor is None:
            raise ConfigError(
                f"connector {name!r} cannot be a source (it is: {', '.join(conn.kinds)})",
                field="source.connector",
                value=name,
            )
        cfg = self._config(conn, config, "source")
        with plugin_boundary(name, "init"):
            return conn.extractor(cfg)

    def loader(self, name: str, config: dict[str, Any]) -> Loader:
        conn = self.get(name)
        if conn.loader is None:
            raise ConfigError(
                f"connector {name!r} cannot be a destination (it is: {', '.join(conn.kinds)})",
                field="destination.connector",
                value=name,
            )
        cfg = self._config(conn, config, "destination")
        with plugin_boundary(name, "init"):
            return conn.loader(cfg)

    def transformer(self, name: str, options: dict[str, Any]) -> Transformer:
        conn = self.get(name)
        if conn.transformer is None:
            raise ConfigError(f"connector {name!r} is not a transform", field="transforms.type", value=name)
        with plugin_boundary(name, "init"):
            return conn.transformer(**options)


@contextmanager
def plugin_boundary(plugin: str, operation: str) -> Iterator[None]:
    """Wrap plugin failures (other than OpenFuse's own errors) in :class:`PluginError`."""
    try:
        yield
    except OpenFuseError:
        raise
    except Exception as e:
        raise PluginError(plugin, operation, e) from e


_REGISTRY: Registry | None = None


def get_registry(*, refresh: bool = False) -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = Registry.from_entry_points()
    return _REGISTRY
