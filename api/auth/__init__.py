"""Authentication (API keys) and authorization (the :class:`Authorizer` protocol).

The FastAPI dependency ``Authorize(action)`` is in :mod:`api.auth.dependencies`.
"""

from api.auth.apikeys import NewKey, new_key, parse_key, verify_secret
from api.auth.authorizer import (
    READ_VERBS,
    Authorizer,
    Decision,
    Resource,
    Subject,
    WorkspaceAuthorizer,
    is_write,
)

__all__ = [
    "READ_VERBS",
    "Authorizer",
    "Decision",
    "NewKey",
    "Resource",
    "Subject",
    "WorkspaceAuthorizer",
    "is_write",
    "new_key",
    "parse_key",
    "verify_secret",
]
