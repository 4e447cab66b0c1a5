"""An email's HTML body as the dashboard shows it (gateway.dashboard.mailview): sanitised."""

from __future__ import annotations

from email.message import EmailMessage

from gateway.dashboard.mailview import sanitized_html

HOSTILE = """<html><head><style>body{display:none}</style><script>alert(1)</script></head><body>
<p onclick="alert(2)">Hello <b>team</b></p>
<img src="https://tracker.example/pixel.gif" onerror="alert(3)">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="logo">
<a href="javascript:alert(4)">js</a> <a href="https://ok.example/x">ok</a>
<a href="data:text/html,<script>alert(5)</script>">data</a>
<iframe src="https://evil.example"></iframe><form action="https://evil.example"><input></form>
<svg onload="alert(6)"></svg><div style="position:fixed">styled</div>
</body></html>"""


def mail(html: str | None, text: str = "plain text") -> bytes:
    message = EmailMessage()
    message["From"] = "alice@example.org"
    message["Subject"] = "hi"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def test_hostile_html_keeps_its_text_and_loses_every_way_to_run_or_track() -> None:
    shown = sanitized_html(mail(HOSTILE))

    assert shown is not None
    assert "<b>team</b>" in shown and "styled" in shown
    lowered = shown.lower()
    for gone in ("<script", "alert(1)", "onclick", "onerror", "onload", "javascript:", "<iframe",
                 "<form", "<input", "<svg", "style=", "<style", "tracker.example",
                 "data:text/html"):  # fmt: skip
        assert gone not in lowered, gone
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in shown
    assert 'href="https://ok.example/x" rel="noopener noreferrer nofollow"' in shown


def test_a_mail_without_html_or_that_cannot_be_read_has_none() -> None:
    assert sanitized_html(mail(None)) is None
    assert sanitized_html(mail("   ")) is None
    assert sanitized_html(b"\xff\xfe not a mail at all \x00") is None
