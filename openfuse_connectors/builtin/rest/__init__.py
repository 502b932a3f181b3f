"""Declarative REST API source: JSON endpoints configured in the pipeline file, no Python.

Example::

    source:
      connector: rest
      config:
        base_url: https://api.example.com/v1
        auth: {type: bearer, token: "${API_TOKEN}"}
        rate_limit: 10
        resources:
          - name: users
            path: /users
            record_selector: $.data[*]
            primary_key: [id]
            paginator: {type: page_number, page_size_param: per_page, page_size: 100}
          - name: orders
            path: /users/{user_id}/orders
            parent: {resource: users, fields: {user_id: id}}
            primary_key: [id]
            cursor_field: updated_at
            incremental: {param: updated_since}
            paginator: {type: cursor, cursor_path: $.meta.next_cursor}

See :mod:`~openfuse_connectors.builtin.rest.config` for every setting,
:mod:`~openfuse_connectors.builtin.rest.extractor` for how streams, schemas and incremental
loads behave, and :mod:`~openfuse_connectors.builtin.rest.client` for retries and credentials.
"""

from openfuse_connectors.builtin.rest.config import RestConfig
from openfuse_connectors.builtin.rest.extractor import RestExtractor
from openfuse_connectors.connector import Connector

CONNECTOR = Connector(
    name="rest",
    config_model=RestConfig,
    extractor=RestExtractor,
    description="JSON REST APIs configured in YAML: auth, pagination, parent/child, incremental.",
)

__all__ = ["CONNECTOR", "RestConfig", "RestExtractor"]
