"""The local tools behind ``[[forward]]`` targets, each with its config and secrets, so one
test can run against every kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes import jira_api, servicenow_api, zendesk_api
from tests.fakes.saas_base import FakeSaaS


@dataclass(frozen=True)
class Tool:
    kind: str
    name: str
    env: dict[str, str]
    wrong_secret_env: dict[str, str]
    keys: str  # the kind's own [[forward]] keys

    def config(self, url: str) -> str:
        return f"""
[[routing]]
when = {{ subject_matches = "SAP" }}
group = "l2-apps"

[[forward]]
name = "{self.name}"
kind = "{self.kind}"
url = "{url}"
{self.keys}
when = {{ group = "l2-apps" }}
allow_private_network = true
"""


JIRA = Tool(
    "jira",
    "l2-jira",
    {
        "SPOC_FORWARD_L2_JIRA_TOKEN": jira_api.TOKEN,
        "SPOC_FORWARD_L2_JIRA_WEBHOOK_SECRET": jira_api.WEBHOOK_SECRET,
    },
    {"SPOC_FORWARD_L2_JIRA_TOKEN": "wrong-token"},
    f'username = "{jira_api.USERNAME}"\nservice_desk_id = "10"\nrequest_type_id = "25"',
)
ZENDESK = Tool(
    "zendesk",
    "cs-zendesk",
    {
        "SPOC_FORWARD_CS_ZENDESK_TOKEN": zendesk_api.TOKEN,
        "SPOC_FORWARD_CS_ZENDESK_WEBHOOK_SECRET": zendesk_api.WEBHOOK_SECRET,
    },
    {"SPOC_FORWARD_CS_ZENDESK_TOKEN": "wrong"},
    f'username = "{zendesk_api.EMAIL}"',
)
SERVICENOW = Tool(
    "servicenow",
    "infra",
    {
        "SPOC_FORWARD_INFRA_PASSWORD": servicenow_api.PASSWORD,
        "SPOC_FORWARD_INFRA_WEBHOOK_SECRET": "whsec_c2VydmljZW5vdy1idXNpbmVzcy1ydWxlLXNlY3JldA==",
    },
    {"SPOC_FORWARD_INFRA_PASSWORD": "wrong"},
    f'username = "{servicenow_api.USERNAME}"',
)


def fake_for(tool: Tool) -> FakeSaaS:
    if tool.kind == "zendesk":
        return zendesk_api.FakeZendesk()
    return servicenow_api.FakeServiceNow()


def created(fake: Any) -> list[Any]:
    """What the tool holds that spoc created (tickets, incidents)."""
    return list(getattr(fake, "tickets", None) or getattr(fake, "incidents", {}))
