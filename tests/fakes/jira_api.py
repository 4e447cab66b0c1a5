"""Jira Service Management Cloud, played locally: the REST calls spoc makes and the admin
webhooks Jira sends, built from Atlassian's documented shapes.

Endpoints (basic auth ``username:token``; a wrong one gets 401 with ``errorMessage``)
    ``POST /rest/servicedeskapi/customer`` ``{"email", "displayName"}`` -> 201 with
    ``accountId``, ``emailAddress``, ``displayName``; an email that has a customer already
    -> 400 ``{"errorMessage": "An account already exists for this email", ...}``.
    ``GET /rest/api/3/user/search?query=<email>`` -> a list of users (``accountId``).
    ``POST /rest/servicedeskapi/request`` ``{"serviceDeskId", "requestTypeId",
    "requestFieldValues": {"summary", "description"}, "raiseOnBehalfOf"}`` -> 201 with
    ``issueId``, ``issueKey``, ``requestFieldValues`` as a list, ``currentStatus``, ``_links``;
    an unknown service desk or request type, or no summary -> 400 ``errorMessage``.
    ``POST /rest/servicedeskapi/request/{key}/comment`` ``{"body", "public"}`` -> 201 with
    ``id``, ``body``, ``public``, ``author``; an unknown key -> 404.
    ``GET /rest/servicedeskapi/request/{key}/comment/{id}`` -> that comment.
    ``GET /rest/api/3/search/jql`` with ``fields=summary`` and
    ``jql=summary ~ "\\"<phrase>\\"" [ORDER BY created ASC]`` (the enhanced JQL search)
    -> 200 ``{"issues": [{"id", "key", "self", "fields": {"summary"}}], "isLast": true}``:
    the issues whose summary contains the phrase (case-folded, as a text search would),
    oldest first; any other JQL -> 400 ``{"errorMessages": [...]}``.

``script`` holds answers to give first, one per call (``(status, headers)``): 429 with a
``Retry-After``, 503... Every call is in ``calls``.

The agent's side: :meth:`FakeJira.agent_comment` adds a comment as an agent would in Jira and
returns the ``comment_created`` webhook body; :meth:`FakeJira.resolve` returns a
``jira:issue_updated`` body with the resolution change; :meth:`FakeJira.deliver` POSTs a body
to a URL signed as Jira's admin webhooks are (``X-Hub-Signature: sha256=<hex HMAC-SHA256>``,
``X-Atlassian-Webhook-Identifier``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.saas_base import FakeSaaS

USERNAME = "spoc@example.com"
TOKEN = "jira-test-api-token"
WEBHOOK_SECRET = "jira-test-webhook-secret"
AGENT = {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Agent Bo", "active": True}


_SUMMARY_PHRASE = re.compile(r'summary ~ "\\"(.+?)\\""(?: ORDER BY created ASC)?')


def _error(status: int, message: str) -> web.Response:
    body = {"errorMessage": message, "i18nErrorMessage": {"i18nKey": "sd.error", "parameters": []}}
    return web.json_response(body, status=status)


@dataclass
class FakeJira(FakeSaaS):
    username: str = USERNAME
    password: str = TOKEN
    webhook_secret: str = WEBHOOK_SECRET
    service_desk_id: str = "10"
    request_type_id: str = "25"
    project: str = "HELP"
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)  # by email
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # by issue key
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by issue key
    customers_forbidden: bool = False  # the integration user is no Jira administrator
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def routes(self, app: web.Application) -> None:
        sd = "/rest/servicedeskapi"
        app.router.add_post(sd + "/customer", self._customer)
        app.router.add_get("/rest/api/3/user/search", self._user_search)
        app.router.add_post(sd + "/request", self._request)
        app.router.add_post(sd + "/request/{key}/comment", self._add_comment)
        app.router.add_get(sd + "/request/{key}/comment/{id}", self._get_comment)
        app.router.add_get("/rest/api/3/search/jql", self._search)

    def refused(self, status: int) -> web.Response:
        if status == 401:
            return _error(401, "Client must be authenticated to access this resource.")
        return _error(status, "scripted")

    def _next(self) -> int:
        return int(next(self._ids))

    async def _customer(self, request: web.Request) -> web.Response:
        body = await request.json()
        email = str(body.get("email") or "")
        if self.customers_forbidden:
            return _error(403, "You do not have permission to create customers")
        if "@" not in email:
            return _error(400, "The email address is not valid")
        if email in self.customers:
            return _error(400, "An account already exists for this email")
        account = {
            "accountId": f"qm:{self._next():06d}",
            "emailAddress": email,
            "displayName": body.get("displayName") or email,
            "active": True,
            "timeZone": "UTC",
        }
        self.customers[email] = account
        return web.json_response(account, status=201)

    async def _user_search(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        return web.json_response([c for e, c in self.customers.items() if e == query])

    async def _request(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("serviceDeskId") != self.service_desk_id:
            return _error(400, "The service project does not exist")
        if body.get("requestTypeId") != self.request_type_id:
            return _error(400, "The request type does not exist")
        fields = body.get("requestFieldValues") or {}
        if not fields.get("summary"):
            return _error(400, "Summary: You must specify a summary of the issue.")
        accounts = {c["accountId"]: c for c in self.customers.values()}
        on_behalf = body.get("raiseOnBehalfOf")
        if on_behalf is not None and on_behalf not in accounts:
            return _error(400, "The user does not exist")
        number = self._next()
        key = f"{self.project}-{number}"
        created = {
            "issueId": str(10000 + number),
            "issueKey": key,
            "requestTypeId": self.request_type_id,
            "serviceDeskId": self.service_desk_id,
            "createdDate": {"iso8601": "2026-12-01T10:00:00+0000", "epochMillis": 1796119200000},
            "reporter": accounts.get(on_behalf, AGENT),
            "requestFieldValues": [
                {"fieldId": k, "label": k.title(), "value": v} for k, v in fields.items()
            ],
            "currentStatus": {"status": "Waiting for support", "statusCategory": "NEW"},
            "_links": {"web": f"{self.base_url}/servicedesk/customer/portal/10/{key}"},
            "raiseOnBehalfOf": on_behalf,
        }
        self.requests[key] = created
        self.comments[key] = []
        await self.after_create()
        return web.json_response(created, status=201)

    async def _search(self, request: web.Request) -> web.Response:
        jql = request.query.get("jql", "")
        match = _SUMMARY_PHRASE.fullmatch(jql.strip())
        if match is None:
            body = {"errorMessages": [f"Error in the JQL Query: cannot read {jql!r}"], "errors": {}}
            return web.json_response(body, status=400)
        phrase = match.group(1).casefold()
        issues = []
        for key, created in self.requests.items():  # in creation order
            summary = next(
                str(f["value"]) for f in created["requestFieldValues"] if f["fieldId"] == "summary"
            )
            if phrase in summary.casefold():
                issues.append(
                    {
                        "id": created["issueId"],
                        "key": key,
                        "self": f"{self.base_url}/rest/api/3/issue/{created['issueId']}",
                        "fields": {"summary": summary},
                    }
                )
        return web.json_response({"issues": issues, "isLast": True})

    def _comment(self, key: str, body: str, public: bool, author: dict[str, Any]) -> dict[str, Any]:
        comment = {
            "id": str(1000 + self._next()),
            "body": body,
            "public": public,
            "author": author,
            "created": {"iso8601": "2026-12-01T10:05:00+0000"},
        }
        self.comments[key].append(comment)
        return comment

    async def _add_comment(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key not in self.requests:
            return _error(404, "Request does not exist")
        body = await request.json()
        if not isinstance(body.get("public"), bool) or not body.get("body"):
            return _error(400, "body and public are required")
        user = {"accountId": "spoc", "displayName": "spoc integration"}
        return web.json_response(
            self._comment(key, str(body["body"]), body["public"], user), status=201
        )

    async def _get_comment(self, request: web.Request) -> web.Response:
        key, wanted = request.match_info["key"], request.match_info["id"]
        for comment in self.comments.get(key, []):
            if comment["id"] == wanted:
                return web.json_response(comment)
        return _error(404, "Comment does not exist")

    # ---- the agent's side -------------------------------------------------------------
    def _issue(self, key: str) -> dict[str, Any]:
        created = self.requests[key]
        return {"id": created["issueId"], "key": key, "self": f"{self.base_url}/issue/{key}"}

    def agent_comment(self, key: str, body: str, *, public: bool) -> dict[str, Any]:
        """An agent comments in Jira: the ``comment_created`` webhook body Jira sends."""
        comment = self._comment(key, body, public, AGENT)
        return self.comment_webhook(key, comment)

    def comment_webhook(self, key: str, comment: dict[str, Any]) -> dict[str, Any]:
        return {
            "timestamp": 1796119500000,
            "webhookEvent": "comment_created",
            "comment": {
                "id": comment["id"],
                "body": comment["body"],
                "author": comment["author"],
                "updateAuthor": comment["author"],
            },
            "issue": self._issue(key),
        }

    def resolve(self, key: str) -> dict[str, Any]:
        """An agent resolves the request: ``jira:issue_updated`` with the changelog."""
        return {
            "timestamp": 1796119600000,
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": AGENT,
            "issue": self._issue(key),
            "changelog": {
                "id": "10400",
                "items": [
                    {"field": "resolution", "fieldtype": "jira", "to": "10000", "toString": "Done"},
                    {"field": "status", "fieldtype": "jira", "toString": "Resolved"},
                ],
            },
        }

    async def deliver(
        self,
        url: str,
        payload: dict[str, Any],
        identifier: str,
        *,
        secret: str | None = None,
        signed: bool = True,
    ) -> tuple[int, Any]:
        """POST a webhook as Jira does, signed with ``secret`` (default: the right one), or
        with no ``X-Hub-Signature`` at all (``signed=False``: a webhook saved without a secret)."""
        raw = json.dumps(payload).encode()
        mac = hmac.new((secret or self.webhook_secret).encode(), raw, hashlib.sha256)
        headers = {
            "Content-Type": "application/json",
            "X-Atlassian-Webhook-Identifier": identifier,
        }
        if signed:
            headers["X-Hub-Signature"] = f"sha256={mac.hexdigest()}"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=raw, headers=headers) as response,
        ):
            return response.status, await response.json()
