"""ServiceNow, played locally: the Table API as spoc calls it, from ServiceNow's documented
shapes.

``GET /api/now/table/sys_user?sysparm_query=email=<email>`` -> ``{"result": [{"sys_id"}]}``.
``POST /api/now/table/incident`` -> 201 ``{"result": {"sys_id", "number": "INC001000n", ...}}``
(no ``short_description`` -> 400). ``GET /api/now/table/incident?sysparm_query=correlation_id=<x>
[^ORDERBYsys_created_on]&sysparm_fields=a,b&sysparm_limit=n`` -> ``{"result": [...]}``, the
incidents with that ``correlation_id`` (only the fields asked for); another query -> 400.
``PATCH /api/now/table/incident/{sys_id}`` with
``comments`` / ``work_notes`` -> 200; unknown sys_id -> 404. Basic auth; else 401
``{"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth
information"}, "status": "failure"}``.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.saas_base import FakeSaaS

USERNAME = "spoc.integration"
PASSWORD = "servicenow-test-password"

_ERRORS = {
    401: ("User Not Authenticated", "Required to provide Auth information"),
    403: ("Operation Failed", "ACL Exception Insert Failed due to security constraints"),
    404: ("No Record found", "Record doesn't exist or ACL restricts the record retrieval"),
    429: ("Rate limit exceeded", "Too many requests"),
}


def _failure(status: int, message: str, detail: str) -> web.Response:
    body = {"error": {"message": message, "detail": detail}, "status": "failure"}
    return web.json_response(body, status=status)


@dataclass
class FakeServiceNow(FakeSaaS):
    username: str = USERNAME
    password: str = PASSWORD
    users: dict[str, str] = field(default_factory=dict)  # email -> sys_id
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)  # by sys_id
    journal: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # (field, text)
    _numbers: Any = field(default_factory=lambda: itertools.count(10001))

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/now/table/sys_user", self._users)
        app.router.add_post("/api/now/table/incident", self._create)
        app.router.add_get("/api/now/table/incident", self._incidents)
        app.router.add_patch("/api/now/table/incident/{sys_id}", self._update)

    def refused(self, status: int) -> web.Response:
        message, detail = _ERRORS.get(status, ("Server error", "scripted"))
        return _failure(status, message, detail)

    async def _users(self, request: web.Request) -> web.Response:
        query = request.query.get("sysparm_query", "")
        email = query.removeprefix("email=")
        found = [{"sys_id": self.users[email]}] if email in self.users else []
        return web.json_response({"result": found})

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not body.get("short_description"):
            return _failure(400, "Invalid request", "short_description is mandatory")
        sys_id = uuid.uuid4().hex
        record = {**body, "sys_id": sys_id, "number": f"INC{next(self._numbers):07d}", "state": "1"}
        self.incidents[sys_id], self.journal[sys_id] = record, []
        await self.after_create()
        return web.json_response({"result": record}, status=201)

    async def _incidents(self, request: web.Request) -> web.Response:
        query = request.query.get("sysparm_query", "").removesuffix("^ORDERBYsys_created_on")
        field_name, _, value = query.partition("=")
        if field_name != "correlation_id" or not value or "^" in value:
            return _failure(400, "Invalid query", f"unsupported sysparm_query {query!r}")
        limit = int(request.query.get("sysparm_limit", "10000"))
        fields = [f for f in request.query.get("sysparm_fields", "").split(",") if f]
        found = [r for r in self.incidents.values() if r.get("correlation_id") == value][:limit]
        if fields:
            found = [{f: r.get(f, "") for f in fields} for r in found]
        return web.json_response({"result": found})

    async def _update(self, request: web.Request) -> web.Response:
        sys_id = request.match_info["sys_id"]
        if sys_id not in self.incidents:
            return self.refused(404)
        body = await request.json()
        for name in ("comments", "work_notes"):
            if name in body:
                self.journal[sys_id].append((name, body[name]))
        return web.json_response({"result": self.incidents[sys_id]})
