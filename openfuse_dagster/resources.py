"""Connections as Dagster resources, with secrets that Dagster never stores.

A resource holds a connector name and its settings and builds the extractor or loader through
the connector registry, in the step's own process. Dagster persists a resource's configured
values (in job snapshots, shown in the UI), so a secret setting must be a reference:

* ``secrets={"dsn": EnvVar("ORDERS_DSN")}`` - Dagster stores and shows only the variable name;
* or ``config={"dsn": "postgresql://app:${PG_PASSWORD}@db/shop"}`` - ``${VAR}`` and
  ``${VAR:-default}`` in ``config`` strings are expanded when the resource builds a connector,
  so only the template is stored.

:meth:`OpenFuseConnectionResource.from_connector_ref` builds one from a pipeline's ``source`` or
``destination`` and refuses secret settings written as literal values (the error names the
field). Which settings are secret is read from the connector's config model (``SecretStr``).

Each pipeline gets two resources, under :func:`source_resource_key` and
:func:`destination_resource_key`; :func:`openfuse_resources` builds both.
"""

from __future__ import annotations

import re
import typing
from typing import Any

from dagster import ConfigurableResource, EnvVar
from pydantic import Field, SecretBytes, SecretStr

from openfuse_connectors.config import validate_config
from openfuse_connectors.errors import ConfigError
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.loader import Loader
from openfuse_connectors.registry import Registry, get_registry
from openfuse_connectors.spec import ConnectorRef, PipelineSpec, expand_env

__all__ = [
    "OpenFuseConnectionResource",
    "destination_resource_key",
    "openfuse_resources",
    "secret_fields",
    "source_resource_key",
]

_WHOLE_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def source_resource_key(pipeline: PipelineSpec) -> str:
    return f"openfuse_{pipeline.name}_source"


def destination_resource_key(pipeline: PipelineSpec) -> str:
    return f"openfuse_{pipeline.name}_destination"


def _is_secret_type(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_is_secret_type(a) for a in typing.get_args(annotation))


def secret_fields(connector: str, registry: Registry | None = None) -> frozenset[str]:
    """Names (and aliases) of the secret settings of ``connector``'s config model."""
    model = (registry or get_registry()).get(connector).config_model
    if model is None:
        return frozenset()
    names: set[str] = set()
    for name, f in model.model_fields.items():
        if _is_secret_type(f.annotation):
            names.add(name)
            if f.alias:
                names.add(f.alias)
    return frozenset(names)


class OpenFuseConnectionResource(ConfigurableResource):
    """One connection: a registered connector plus its settings.

    Example::

        OpenFuseConnectionResource(
            connector="postgres",
            config={"schema": "analytics"},
            secrets={"dsn": EnvVar("WAREHOUSE_DSN")},
        )
    """

    connector: str = Field(description="Registry name of the connector, e.g. `postgres`.")
    config: dict[str, Any] = Field(
        default={},
        description="Non-secret settings. Strings may hold ${VAR} / ${VAR:-default} references, "
        "expanded in the step's process.",
    )
    secrets: dict[str, str] = Field(
        default={},
        description="Secret settings, each a dagster.EnvVar so that Dagster stores only the name.",
        json_schema_extra={"dagster__is_secret": True},
    )

    def connector_config(self) -> dict[str, Any]:
        """The settings to hand to the connector: references expanded, secrets merged in.

        Call it only inside a run (where Dagster has resolved the ``EnvVar`` secrets) and never
        log the result.
        """
        cfg: dict[str, Any] = expand_env(dict(self.config), where="config")
        cfg.update(self.secrets)
        return cfg

    def build_extractor(self, registry: Registry | None = None) -> Extractor:
        return (registry or get_registry()).extractor(self.connector, self.connector_config())

    def build_loader(self, registry: Registry | None = None) -> Loader:
        return (registry or get_registry()).loader(self.connector, self.connector_config())

    @classmethod
    def from_connector_ref(
        cls,
        ref: ConnectorRef,
        *,
        role: str,
        registry: Registry | None = None,
        allow_literal_secrets: bool = False,
    ) -> OpenFuseConnectionResource:
        """A resource for a pipeline's ``source`` or ``destination`` (``role``).

        The settings are validated now (with references expanded from this process's
        environment), so a bad setting is reported when the definitions load, naming the field.
        A secret that is exactly ``${VAR}`` becomes ``EnvVar("VAR")``; a secret template stays a
        template; a literal secret raises :class:`ConfigError` unless ``allow_literal_secrets``
        (for local experiments only: Dagster then stores the value, masked in the UI).
        """
        reg = registry or get_registry()
        conn = reg.get(ref.connector)
        needed = conn.extractor if role == "source" else conn.loader
        if needed is None:
            raise ConfigError(
                f"connector {ref.connector!r} cannot be a {role} (it is: {', '.join(conn.kinds)})",
                field=f"{role}.connector",
                value=ref.connector,
            )
        if conn.config_model is not None:
            expanded = expand_env(dict(ref.config), where=f"{role}.config")
            validated = validate_config(conn.config_model, expanded, connector=ref.connector, role=role)
            if not allow_literal_secrets:
                for path in _literal_nested_secrets(validated, ref.config):
                    raise ConfigError(
                        f"{role} connector {ref.connector!r}: setting {path!r} is a secret written as a "
                        "literal value; Dagster would store it. Write it as an environment reference, "
                        f"e.g. `${{{ref.connector.upper()}_{path.replace('.', '_').upper()}}}`",
                        field=f"{role}.config.{path}",
                    )
        hidden = secret_fields(ref.connector, reg)
        config: dict[str, Any] = {}
        secrets: dict[str, str] = {}
        for key, value in ref.config.items():
            if key not in hidden or value is None:
                config[key] = value
            elif isinstance(value, str) and (m := _WHOLE_REF.match(value)):
                secrets[key] = EnvVar(m.group(1))
            elif isinstance(value, str) and "${" in value:
                config[key] = value
            elif allow_literal_secrets:
                secrets[key] = str(value)
            else:
                raise ConfigError(
                    f"{role} connector {ref.connector!r}: setting {key!r} is a secret written as a literal "
                    f"value; Dagster would store it. Write it as an environment reference instead, "
                    f"e.g. `{key}: ${{{ref.connector.upper()}_{key.upper()}}}`",
                    field=f"{role}.config.{key}",
                )
        return cls(connector=ref.connector, config=config, secrets=secrets)


def _literal_nested_secrets(model: Any, raw: Any, path: str = "") -> list[str]:
    """Paths of secrets *inside* settings (``auth.token``) written as literals in ``raw`` (the
    config before ``${VAR}`` expansion). Top-level secrets are checked by the caller."""
    from pydantic import BaseModel, SecretBytes, SecretStr

    out: list[str] = []
    if isinstance(model, BaseModel) and isinstance(raw, dict):
        for name, field in type(model).model_fields.items():
            key = field.alias if field.alias and field.alias in raw else name
            if key not in raw:
                continue
            value, sub = getattr(model, name), raw[key]
            where = f"{path}.{key}" if path else key
            if path and isinstance(value, SecretStr | SecretBytes):
                if isinstance(sub, str) and "${" not in sub:
                    out.append(where)
            else:
                out += _literal_nested_secrets(value, sub, where)
    elif isinstance(model, list | tuple) and isinstance(raw, list):
        for i, (m, r) in enumerate(zip(model, raw, strict=False)):
            out += _literal_nested_secrets(m, r, f"{path}[{i}]")
    return out


def openfuse_resources(
    pipeline: PipelineSpec,
    *,
    registry: Registry | None = None,
    allow_literal_secrets: bool = False,
) -> dict[str, OpenFuseConnectionResource]:
    """The source and destination resources of ``pipeline``, under their default keys."""
    return {
        source_resource_key(pipeline): OpenFuseConnectionResource.from_connector_ref(
            pipeline.source, role="source", registry=registry, allow_literal_secrets=allow_literal_secrets
        ),
        destination_resource_key(pipeline): OpenFuseConnectionResource.from_connector_ref(
            pipeline.destination,
            role="destination",
            registry=registry,
            allow_literal_secrets=allow_literal_secrets,
        ),
    }
