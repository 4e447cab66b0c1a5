"""The end users' web form: ``GET/POST /report``, channel ``web``.

What it does: serves a plain HTML form (name, email, category, description, attachments) and
turns each submission into one contact (``normalizer.webform``). The answer page names the
ticket's ref; the acknowledgement goes by email like any other contact's.

Config: ``[webform]`` -- ``enabled``, ``title``, ``categories`` (``{name, label}`` tables; none:
the IVR menu's), ``max_attachments``, ``max_attachment_bytes`` (all files together),
``max_reports_per_hour`` (per client address and per email address; the gateway counts them
in the database, across instances: ``normalizer.rate_limits``).

Replies: 200 with the ref once the contact is committed; 400 naming the field that is wrong (the
form is shown again with what was typed); 403 without a valid form token (CSRF); 400 when the
honeypot field is filled; 411 for a multipart upload without a Content-Length (chunked); 415 for
one with a Content-Encoding (it would inflate past what it reserved); 413 over the attachment
limits, also before the body is read when its Content-Length is over what a report can be
(``max_report_bytes``: the files at their limit and the text); 429 over the rate limit (with
``Retry-After``); 503 when the database is down (nothing stored: send again), or, as JSON with
``Retry-After``, when the HTTP server's body budget is spent (``gateway.http_budget``). Every
answer but that 503 is the HTML page.

Idempotency key: ``web-<nonce>`` from the rendered form's signed token, so one page sent twice
is one ticket.
"""

from channels.webform.channel import WebFormChannel, WebFormSettings

__all__ = ["WebFormChannel", "WebFormSettings"]
