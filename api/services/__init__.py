"""The operations of the API, shared by the REST routes and the GraphQL fields (see
:mod:`api.services.base`). One module per resource."""

from api.services.base import OPERATIONS, Ctx, Operation, operation

__all__ = ["OPERATIONS", "Ctx", "Operation", "operation"]
