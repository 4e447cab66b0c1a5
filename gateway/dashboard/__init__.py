"""The operators' dashboard: server-rendered HTML (Jinja2), behind a login, no script at all.

Routes (on the gateway's app): ``GET /`` (intake per channel over 24 hours and 7 days, what
became of the acknowledgements, the queue with filters and pages), ``GET /dashboard/tickets/
{ref}`` (a ticket's whole cross-channel timeline and the operator's actions), ``POST
/dashboard/tickets/{ref}/reply|escalate|status`` (through ``TicketService``, the API's own code
paths), the quarantine and dead letters (``gateway.dashboard.queues``), ``GET/POST
/dashboard/login``, ``GET /dashboard/login/link/{token}`` (a one-use link),
``POST /dashboard/logout``, ``/dashboard/static/``.

Without a session every page answers 303 to the login, never data. Every form that changes
something carries the session's CSRF token. User content is autoescaped by Jinja2.
Config: ``[dashboard]`` -- ``enabled``, ``session_hours``, ``page_size``; secrets from
``SPOC_DASHBOARD_SECRET`` and ``SPOC_DASHBOARD_PASSWORD_HASH`` (``gateway.dashboard.session``).
"""

from gateway.dashboard.views import Dashboard, DashboardSettings

__all__ = ["Dashboard", "DashboardSettings"]
