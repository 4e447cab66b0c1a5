"""Did the sender pass DMARC, SPF or DKIM, as the MX in front of the desk says?

The MX that receives mail from the internet records its checks in ``Authentication-Results``
headers (RFC 8601), which the ``authres`` library parses. Only headers whose authserv-id is one
of ``trusted_authserv_ids`` count, and only the topmost run of them: reading from the top, the
first ``Authentication-Results`` header with any other authserv-id (or one that does not parse)
ends what the MX added; anything below it came with the message and may be forged. RFC 8601
section 5 asks the MX to delete incoming headers that carry its own authserv-id (Postfix with
OpenDKIM/OpenDMARC, rspamd and Exchange Online do).

:func:`sender_authenticated` says True when the trusted results hold ``dmarc=pass``, or, with
no DMARC verdict, an ``spf=pass`` (``smtp.mailfrom``) or ``dkim=pass`` (``header.d``) for the
From domain or a parent of it; False otherwise -- ``dmarc=fail`` wins over any pass.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import authres

__all__ = ["sender_authenticated"]

MAX_HEADERS = 20


def sender_authenticated(
    header_items: Iterable[tuple[str, str]],
    trusted_authserv_ids: Collection[str],
    from_domain: str | None,
) -> bool:
    """``header_items`` are the message's (name, value) pairs in order, top first."""
    trusted = {t.strip().casefold() for t in trusted_authserv_ids}
    methods: dict[str, list[tuple[str, str]]] = {}  # method -> [(result, identity domain)]
    seen = 0
    for name, value in header_items:
        if name.lower() != "authentication-results":
            continue
        seen += 1
        if seen > MAX_HEADERS:
            break
        parsed = _parse(value)
        if parsed is None or str(parsed.authserv_id).casefold() not in trusted:
            break
        for result in parsed.results:
            method = str(result.method).casefold()
            methods.setdefault(method, []).append(
                (str(result.result).casefold(), _identity_domain(result))
            )
    dmarc = [r for r, _ in methods.get("dmarc", [])]
    if "fail" in dmarc:
        return False
    if "pass" in dmarc:
        return True
    domain = (from_domain or "").casefold()
    if not domain:
        return False
    for method in ("spf", "dkim"):
        for result, identity in methods.get(method, []):
            if result == "pass" and identity and _aligned(identity, domain):
                return True
    return False


def _parse(value: str) -> authres.AuthenticationResultsHeader | None:
    try:
        return authres.AuthenticationResultsHeader.parse_value(" ".join(value.split()))
    except Exception:  # authres raises its own SyntaxError and others on junk
        return None


_IDENTITY_PROPERTIES = ("smtp.mailfrom", "header.d", "header.i")  # HELO says nothing of From


def _identity_domain(result: authres.AuthenticationResult) -> str:
    for prop in result.properties or ():
        if f"{prop.type}.{prop.name}".casefold() in _IDENTITY_PROPERTIES:
            return str(prop.value).rpartition("@")[2].strip().casefold()
    return ""


def _aligned(identity: str, from_domain: str) -> bool:
    """Relaxed alignment, roughly: the same domain, or one a subdomain of the other."""
    if "." not in identity:
        return False  # "com" aligns with nothing
    return (
        identity == from_domain
        or from_domain.endswith("." + identity)
        or identity.endswith("." + from_domain)
    )
