"""A real HTTP API for the REST source's tests: a FastAPI app (served by uvicorn in ``conftest``).

Endpoints (all JSON unless said otherwise):

* ``/pages/{page_number,offset,cursor,link,next_url}`` - ids 1..23 in each pagination style;
* ``/auth/{bearer,basic,header,query,oauth}`` plus ``POST /oauth/token`` (counts token requests);
* ``/flaky/429`` (429 + Retry-After once), ``/flaky/503`` (503 twice), ``/always/503``, ``/html``;
* ``/users`` and ``/users/{user_id}/orders`` - parent/child;
* ``/items?updated_since=`` - a mutable incremental dataset; ``/sample`` - the conformance rows.

Every request is counted per path, with its time and query (``ApiState``).
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from openfuse_connectors.testing import sample_rows

BEARER = "s3cr3t-bearer-token"
BASIC = ("alice", "pw-basic-s3cr3t")
HEADER_KEY = "k3y-header-s3cr3t"
QUERY_KEY = "k3y-query-s3cr3t"
CLIENT = ("openfuse-client", "client-s3cr3t-value")
TOTAL = 23


@dataclass
class ApiState:
    hits: Counter[str] = field(default_factory=Counter)
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    queries: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    users: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    extra_users: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.hits.clear()
        self.times.clear()
        self.queries.clear()
        self.tokens.clear()
        self.token_requests = 0
        self.items = []
        self.extra_users = []
        self.users = {
            1: [{"id": 101, "total": 5}, {"id": 102, "total": 7}],
            2: [],
            3: [{"id": 301, "total": 1}],
        }


@dataclass
class Api:
    base_url: str
    state: ApiState


def _rows(ids: range) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"n{i}"} for i in ids]


def build_app(state: ApiState) -> Any:
    app = FastAPI()

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Any:
        key = request.url.path
        state.hits[key] += 1
        state.times[key].append(time.monotonic())
        state.queries[key].append(dict(request.query_params))
        return await call_next(request)

    def window(start: int, size: int) -> list[dict[str, Any]]:
        return _rows(range(start + 1, min(start + size, TOTAL) + 1))

    @app.get("/pages/page_number")
    async def page_number(page: int = 1, per_page: int = 5) -> Any:
        return {
            "data": window((page - 1) * per_page, per_page),
            "meta": {"total_pages": math.ceil(TOTAL / per_page)},
        }

    @app.get("/pages/offset")
    async def offset(offset: int = 0, limit: int = 5) -> Any:
        return {"results": window(offset, limit), "total": TOTAL}

    @app.get("/pages/cursor")
    async def cursor(cursor: str | None = None) -> Any:
        start = int(cursor[1:]) if cursor else 0
        nxt = f"c{start + 5}" if start + 5 < TOTAL else None
        return {"items": window(start, 5), "meta": {"next_cursor": nxt}}

    @app.get("/pages/link")
    async def link(page: int = 1) -> Any:
        headers = {"Link": f'</pages/link?page={math.ceil(TOTAL / 5)}>; rel="last"'}
        if page * 5 < TOTAL:
            headers["Link"] = f'</pages/link?page={page + 1}>; rel="next", ' + headers["Link"]
        return JSONResponse(window((page - 1) * 5, 5), headers=headers)

    @app.get("/pages/next_url")
    async def next_url(request: Request, page: int = 1) -> Any:
        nxt = str(request.url.include_query_params(page=page + 1)) if page * 5 < TOTAL else None
        return {"records": window((page - 1) * 5, 5), "links": {"next": nxt}}

    def denied() -> Response:
        return JSONResponse({"error": "unauthorized"}, status_code=401)

    @app.get("/auth/bearer")
    async def auth_bearer(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {BEARER}":
            return denied()
        return {"data": _rows(range(1, 3))}

    @app.get("/auth/basic")
    async def auth_basic(request: Request) -> Any:
        want = "Basic " + base64.b64encode(f"{BASIC[0]}:{BASIC[1]}".encode()).decode()
        if request.headers.get("authorization") != want:
            return denied()
        return {"data": _rows(range(1, 3))}

    @app.get("/auth/header")
    async def auth_header(request: Request) -> Any:
        if request.headers.get("x-api-key") != HEADER_KEY:
            return denied()
        return {"data": _rows(range(1, 3))}

    @app.get("/auth/query")
    async def auth_query(request: Request) -> Any:
        if request.query_params.get("api_key") != QUERY_KEY:
            return denied()
        return {"data": _rows(range(1, 3))}

    @app.get("/auth/oauth")
    async def auth_oauth(request: Request, page: int = 1) -> Any:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in state.tokens:
            return denied()
        return {"data": window((page - 1) * 5, 5)}

    @app.post("/oauth/token")
    async def token(request: Request) -> Any:
        state.token_requests += 1
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        else:
            cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        if form.get("grant_type") != "client_credentials" or (cid, secret) != CLIENT:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        tok = f"tok-{state.token_requests}-{secrets.token_hex(4)}"
        state.tokens.add(tok)
        return {"access_token": tok, "token_type": "bearer", "expires_in": 3600, "scope": form.get("scope")}

    @app.get("/flaky/429")
    async def flaky_429() -> Any:
        if state.hits["/flaky/429"] == 1:
            return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "1"})
        return {"data": _rows(range(1, 4))}

    @app.get("/flaky/503")
    async def flaky_503() -> Any:
        if state.hits["/flaky/503"] <= 2:
            return JSONResponse({"error": "unavailable"}, status_code=503)
        return {"data": _rows(range(1, 4))}

    @app.get("/always/503")
    async def always_503() -> Any:
        return JSONResponse({"error": "down"}, status_code=503)

    @app.get("/html")
    async def html() -> Any:
        body = "<!DOCTYPE html><html><head><title>Maintenance</title></head><body>" + "x" * 300
        return Response(body, media_type="text/html")

    @app.get("/users")
    async def users(page: int = 1) -> Any:
        ids = sorted(state.users)
        chunk = ids[(page - 1) * 2 : page * 2]
        found = [{"id": i, "name": f"user{i}"} for i in chunk]
        if page == 1:
            found += state.extra_users
        return {"users": found, "has_more": page * 2 < len(ids)}

    @app.get("/users/{user_id}/orders")
    async def orders(user_id: int) -> Any:
        return {"orders": state.users.get(user_id, [])}

    @app.get("/items")
    async def items(page: int = 1, updated_since: str | None = None) -> Any:
        rows = sorted(state.items, key=lambda r: (r["updated_at"], str(r.get("id"))))
        if updated_since:
            since = dt.datetime.fromisoformat(updated_since)
            rows = [r for r in rows if dt.datetime.fromisoformat(r["updated_at"]) >= since]
        return {"data": rows[(page - 1) * 3 : page * 3]}

    @app.get("/sample")
    async def sample(updated_since: str | None = None) -> Any:
        rows = [
            {
                "id": r["id"],
                "name": r["name"],
                "amount": str(r["amount"]),
                "updated_at": r["updated_at"].isoformat(),
                "active": r["active"],
            }
            for r in sample_rows(range(1, 11))
            if updated_since is None or r["updated_at"] >= dt.datetime.fromisoformat(updated_since)
        ]
        return {"data": rows}

    return app
