"""Connector configuration models: pydantic, exported as JSON Schema for forms."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from openfuse_connectors.errors import ConfigError

__all__ = ["ConnectorConfig", "SecretStr", "validate_config"]


class ConnectorConfig(BaseModel):
    """Base for every connector's config. Unknown keys are refused; secrets are `SecretStr`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of this config, with secret fields marked ``writeOnly``."""
        schema = cls.model_json_schema()
        for name, field in cls.model_fields.items():
            if field.annotation in (SecretStr, SecretStr | None):
                prop = schema.get("properties", {}).get(name)
                if prop is not None:
                    prop["writeOnly"] = True
                    prop["format"] = "password"
        return schema


def validate_config(
    model: type[ConnectorConfig], data: dict[str, Any], *, connector: str, role: str
) -> ConnectorConfig:
    """Validate a config mapping, naming the connector, the field and (non-secret) value on error.

    A value is shown only when it is a scalar outside every secret field, nested ones included.
    """
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or None
        raw = err.get("input")
        shown = None
        if (
            err["type"] != "missing"
            and not isinstance(raw, dict | list | tuple)
            and not _secret_path(model, loc)
        ):
            shown = raw
        raise ConfigError(
            f"{role} connector {connector!r}: {err['msg']}",
            field=f"{role}.config.{field}" if field else None,
            value=shown,
        ) from None


def _secret_path(model: type[BaseModel], loc: tuple[Any, ...]) -> bool:
    """Whether a validation error location lies inside a `SecretStr` field (at any depth)."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return False
        fields = current.model_fields
        name = next((n for n, f in fields.items() if part in (n, f.alias)), None)
        if name is None:
            return False
        current = _unwrap(fields[name].annotation)
        if current is SecretStr:
            return True
    # A scalar given where a whole model was expected may be a misplaced secret: don't echo it.
    return isinstance(current, type) and issubclass(current, BaseModel) and current is not model


def _unwrap(annotation: Any) -> Any:
    """`X | None`, `Optional[X]` and containers of X -> X (the model or SecretStr inside)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if not args:
        return annotation
    for a in args:
        inner = _unwrap(a)
        if inner is SecretStr or (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return inner
    return annotation
