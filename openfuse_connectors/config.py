"""Connector configuration models: pydantic, exported as JSON Schema for forms."""

from __future__ import annotations

from typing import Any

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
    """Validate a config mapping, naming the connector, the field and (non-secret) value on error."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        secret = False
        if field and field.split(".")[0] in model.model_fields:
            ann = model.model_fields[field.split(".")[0]].annotation
            secret = ann in (SecretStr, SecretStr | None)
        value = None if secret or err["type"] == "missing" else err.get("input")
        raise ConfigError(
            f"{role} connector {connector!r}: {err['msg']}",
            field=f"{role}.config.{field}" if field else None,
            value=value,
        ) from None
