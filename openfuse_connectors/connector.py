"""A connector bundle: the extractor and/or loader registered under one name."""

from __future__ import annotations

from dataclasses import dataclass

from openfuse_connectors.config import ConnectorConfig
from openfuse_connectors.extractor import Extractor
from openfuse_connectors.loader import Loader
from openfuse_connectors.transformer import Transformer

__all__ = ["Connector"]


@dataclass(frozen=True)
class Connector:
    """What an ``openfuse.connectors`` entry point may point at (or at a single class).

    Attributes:
        name: registry name used in pipeline files.
        config_model: config shared by the extractor and loader.
        extractor / loader / transformer: the classes this connector provides.
        required_feature: license feature needed to use it (None: community edition).
        description: one line for `openfuse connectors list`.
    """

    name: str
    config_model: type[ConnectorConfig] | None = None
    extractor: type[Extractor] | None = None
    loader: type[Loader] | None = None
    transformer: type[Transformer] | None = None
    required_feature: str | None = None
    description: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(
            k
            for k, c in (
                ("source", self.extractor),
                ("destination", self.loader),
                ("transform", self.transformer),
            )
            if c
        )

    @classmethod
    def from_class(cls, obj: type) -> Connector:
        if issubclass(obj, Extractor):
            return cls(
                obj.name,
                obj.config_model,
                extractor=obj,
                required_feature=obj.required_feature,
                description=(obj.__doc__ or "").strip().splitlines()[0] if obj.__doc__ else "",
            )
        if issubclass(obj, Loader):
            return cls(
                obj.name,
                obj.config_model,
                loader=obj,
                required_feature=obj.required_feature,
                description=(obj.__doc__ or "").strip().splitlines()[0] if obj.__doc__ else "",
            )
        if issubclass(obj, Transformer):
            return cls(
                obj.name,
                None,
                transformer=obj,
                required_feature=obj.required_feature,
                description=(obj.__doc__ or "").strip().splitlines()[0] if obj.__doc__ else "",
            )
        raise TypeError(f"{obj!r} is not an Extractor, Loader or Transformer subclass")
