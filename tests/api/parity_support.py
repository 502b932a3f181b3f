"""REST/GraphQL parity: both sides enumerated from the app and the schema, and one call of an
operation made both ways and compared.

* :func:`rest_operations` lists the app's routes by the operation their ``Authorize`` names (the
  route function's name, which is also its OpenAPI ``operationId``).
* :func:`graphql_operations` lists the schema's root fields by the operation in their metadata.
* :class:`Parity` calls one operation over REST and over GraphQL (the query is built from the
  schema: every field of the return type is selected) and compares the answers: the same data
  (keys compared without case or underscores, enum names and timestamps normalised), or the
  same problem (``status``, ``type``, ``reasons``, field names).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
)
from strawberry.utils.str_converters import to_camel_case

from api.auth.dependencies import AuthorizeDependency
from api.graphql import build_schema
from api.graphql.schema import Mutation, Query
from api.services.base import Operation

__all__ = [
    "RUN_OPERATIONS",
    "GqlCall",
    "Parity",
    "RestCall",
    "Side",
    "graphql_operations",
    "normalise",
    "rest_operations",
]

#: Operations whose cases need a live Dagster webserver: test_api_dagster_e2e.py runs them.
RUN_OPERATIONS = frozenset({"launch_run", "list_runs", "get_run", "list_run_events", "cancel_run"})


def _authorize_of(dependant: Any) -> AuthorizeDependency | None:
    for d in dependant.dependencies:
        if isinstance(d.call, AuthorizeDependency):
            return d.call
        found = _authorize_of(d)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class RestOperation:
    method: str
    path: str
    route: APIRoute
    authorize: AuthorizeDependency


def rest_operations(app: Any) -> dict[str, RestOperation]:
    """operation name -> the REST route that performs it (every guarded route of the app)."""
    out: dict[str, RestOperation] = {}
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if not isinstance(route, APIRoute) or not str(ctx.path_format).startswith("/api/"):
            continue
        dep = _authorize_of(route.dependant)
        assert dep is not None, f"{ctx.path_format} has no Authorize"
        assert dep.operation is not None, f"{ctx.path_format}: Authorize({dep.action!r}) names no operation"
        name = dep.operation.name
        assert route.name == name, f"route {route.name} performs operation {name}: name it so"
        assert name not in out, f"two routes perform {name}"
        out[name] = RestOperation(sorted(ctx.methods or ())[0], str(ctx.path_format), route, dep)
    return out


def graphql_operations() -> dict[str, tuple[str, str, Operation[..., Any]]]:
    """operation name -> (``Query``/``Mutation``, GraphQL field name, operation)."""
    out: dict[str, tuple[str, str, Operation[..., Any]]] = {}
    for root in (Query, Mutation):
        definition = root.__strawberry_definition__  # type: ignore[attr-defined]
        for f in definition.fields:
            op = f.metadata.get("operation")
            assert isinstance(op, Operation), f"{root.__name__}.{f.python_name} names no operation"
            assert op.name not in out, f"two GraphQL fields perform {op.name}"
            out[op.name] = (root.__name__, to_camel_case(f.python_name), op)
    return out


# -- one call, both ways


@dataclass
class RestCall:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class GqlCall:
    args: dict[str, Any] = field(default_factory=dict)  # GraphQL argument name -> value (JSON)


@dataclass
class Side:
    """What one side answered: data, or the problem's comparable parts."""

    ok: bool
    data: Any = None
    status: int | None = None
    problem: dict[str, Any] | None = None
    detail: str | None = None  # shown when a comparison fails, not compared


def _unwrap(t: Any) -> Any:
    while isinstance(t, GraphQLNonNull | GraphQLList):
        t = t.of_type
    return t


def selection(t: Any, depth: int = 0) -> str:
    """Every field of an object type, recursively (scalars and enums as they are)."""
    t = _unwrap(t)
    if not isinstance(t, GraphQLObjectType):
        return ""
    assert depth < 6, "type nesting too deep for a selection"
    parts = []
    for name, f in t.fields.items():
        inner = selection(f.type, depth + 1)
        parts.append(f"{name} {{ {inner} }}" if inner else name)
    return " ".join(parts)


def _enum_names(schema: GraphQLSchema) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in schema.type_map.values():
        if isinstance(t, GraphQLEnumType) and not t.name.startswith("__"):
            for name, v in t.values.items():
                value = getattr(v.value, "value", v.value)
                out[name] = str(value)
    return out


_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def normalise(
    value: Any, *, enums: Mapping[str, str] | None = None, ignore: frozenset[str] = frozenset()
) -> Any:
    """Comparable form: keys without case or underscores (``created_at`` = ``createdAt``), GraphQL
    enum names as their REST values, timestamps as datetimes; keys in ``ignore`` dropped."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = k.replace("_", "").lower()
            if key not in ignore:
                out[key] = normalise(v, enums=enums, ignore=ignore)
        return out
    if isinstance(value, list):
        return [normalise(v, enums=enums, ignore=ignore) for v in value]
    if isinstance(value, str):
        if enums and value in enums and value.isupper():
            return enums[value]
        if _ISO.match(value):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


class Parity:
    """Calls operations over REST (``client``) and GraphQL (``/graphql`` of the same client)."""

    def __init__(self, client: Any):
        self.client = client
        self.schema = build_schema()._schema
        self.rest_ops = rest_operations(client.app)
        self.gql_ops = graphql_operations()
        self.enums = _enum_names(self.schema)

    def rest(self, call: RestCall, headers: Mapping[str, str]) -> Side:
        r = self.client.request(
            call.method, call.path, params=call.params, json=call.json, headers={**headers, **call.headers}
        )
        if r.status_code < 400 and r.headers.get("content-type", "").startswith("application/x-ndjson"):
            # A stream (the audit export): its GraphQL twin returns the same text in a field.
            data = {
                "entries": int(r.headers["x-openfuse-entries"]),
                "truncated": r.headers["x-openfuse-truncated"] == "true",
                "ndjson": r.text,
            }
            return Side(True, data=data, status=r.status_code)
        if r.status_code < 400:
            return Side(True, data=None if r.status_code == 204 else r.json(), status=r.status_code)
        return Side(
            False, status=r.status_code, problem=self._problem(r.json()), detail=r.json().get("detail")
        )

    def gql(self, op: str, call: GqlCall, headers: Mapping[str, str]) -> Side:
        root, name, _ = self.gql_ops[op]
        root_type = self.schema.query_type if root == "Query" else self.schema.mutation_type
        assert root_type is not None
        f = root_type.fields[name]
        decl = ", ".join(f"${a}: {f.args[a].type}" for a in call.args)
        args = ", ".join(f"{a}: ${a}" for a in call.args)
        sel = selection(f.type)
        doc = (
            f"{'query' if root == 'Query' else 'mutation'} Op{'(' + decl + ')' if decl else ''} "
            f"{{ {name}{'(' + args + ')' if args else ''} {'{ ' + sel + ' }' if sel else ''} }}"
        )
        r = self.client.post("/graphql", json={"query": doc, "variables": call.args}, headers=dict(headers))
        assert r.status_code == 200, r.text
        body = r.json()
        if body.get("errors"):
            (err,) = body["errors"]
            ext = err.get("extensions") or {}
            assert "status" in ext, f"{op}: not a problem: {err}"
            return Side(False, status=ext["status"], problem=self._problem(ext), detail=ext.get("detail"))
        return Side(True, data=body["data"][name])

    @staticmethod
    def _problem(doc: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "status": doc.get("status"),
            "type": doc.get("type"),
            "reasons": doc.get("reasons"),
            "fields": sorted(e["field"] for e in doc.get("errors") or ()),
        }

    def compare(
        self,
        op: str,
        rest: Side,
        gql: Side,
        *,
        ignore: frozenset[str] = frozenset(),
    ) -> None:
        assert rest.ok == gql.ok, (
            f"{op}: REST {'succeeded' if rest.ok else rest.detail} but GraphQL {'succeeded' if gql.ok else gql.detail}"
        )
        if not rest.ok:
            assert rest.problem == gql.problem, f"{op}: REST {rest.problem} != GraphQL {gql.problem}"
            return
        if rest.status == 204:
            assert gql.data is True, f"{op}: REST 204, GraphQL {gql.data!r}"
            return
        a = normalise(rest.data, ignore=ignore)
        b = normalise(gql.data, enums=self.enums, ignore=ignore)
        assert a == b, f"{op}: REST and GraphQL answers differ:\nREST    {a}\nGraphQL {b}"


#: A case: makes (a REST call, a GraphQL call) for one side - called once for each side, so a
#: write can get a fresh target each time - and lists keys that differ by construction.
CaseFn = Callable[[Any], tuple[RestCall, GqlCall]]
