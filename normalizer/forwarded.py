"""Mail forwarded in by the desk's own staff: the requester is the person who wrote it.

An agent who gets a user's mail in a personal or legacy mailbox forwards it to the desk. Without
this step the agent would become the requester, and the acknowledgement, the replies and the
user's later mail would miss each other. :class:`ForwardedStep` runs after
:func:`normalizer.email.contact_from_email` for mail from ``[email] agent_addresses`` (shell
patterns such as ``*@it.example.com``) and looks for the forwarded message:

- an attached ``message/rfc822`` part (Outlook's and Thunderbird's "forward as attachment"):
  the attached message is converted like any mail;
- else an inline block under the markers mail clients write ("---------- Forwarded message
  ---------", "-------- Forwarded Message --------", "Begin forwarded message:", "-----Original
  Message-----"), whose ``From:`` line names the original sender.

The contact then comes from the original sender (its subject, text and attachments; the
agent's own note is kept above the forwarded text), references the original Message-ID so it
joins a ticket the user opened directly, and records ``forwarded_by``. Mail from an agent
without a forwarded message, or whose forwarded sender can't be read, is left as it is.
Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from normalizer.contact import Contact, Party
from normalizer.headers import addresses, decode_header
from normalizer.text import clean_line

__all__ = ["ForwardedStep", "forwarded_block"]

Converter = Callable[[bytes], Contact]

_MARKER = re.compile(
    r"^[ \t>]*(?:-{2,}\s*Forwarded [Mm]essage\s*-{2,}|Begin forwarded message:"
    r"|-{2,}\s*Original Message\s*-{2,})[ \t]*$",
    re.MULTILINE,
)
_HEADER_LINE = re.compile(
    r"^[ \t>]*(From|Sent|Date|Subject|To|Cc)[ \t]*:[ \t]*(.*)$", re.IGNORECASE
)
_MAILTO = re.compile(r"\[mailto:([^\]\s]+)\]", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(?:(?:fwd?|wg|tr|rv|fw)\s*:\s*)+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ForwardedBlock:
    """An inline forwarded message, as read from the text under its marker."""

    sender: Party
    subject: str
    text: str
    note: str  # what the agent wrote above the marker


def forwarded_block(text: str) -> ForwardedBlock | None:
    """The first inline forwarded message in ``text`` whose From line names an address."""
    marker = _MARKER.search(text)
    if marker is None:
        return None
    lines = text[marker.end() :].lstrip("\n").split("\n")
    fields: dict[str, str] = {}
    body_start = len(lines)
    for i, line in enumerate(lines):
        if not line.strip(" \t>"):
            if fields:
                body_start = i + 1
                break
            continue
        header = _HEADER_LINE.match(line)
        if header is None:
            body_start = i
            break
        fields.setdefault(header.group(1).casefold(), header.group(2).strip())
    sender = _party(fields.get("from", ""))
    if sender is None:
        return None
    body = "\n".join(_unquote(line) for line in lines[body_start:]).strip("\n")
    return ForwardedBlock(
        sender=sender,
        subject=clean_line(fields.get("subject", "")),
        text=body,
        note=text[: marker.start()].strip(),
    )


class ForwardedStep:
    """``contact -> contact``: a forward from an agent becomes the original sender's contact."""

    off_loop = True  # converts the attached message, which may be a big HTML mail

    def __init__(self, agent_addresses: tuple[str, ...], convert: Converter) -> None:
        self.agents = tuple(a.casefold() for a in agent_addresses)
        self._convert = convert  # bytes -> Contact, for an attached message/rfc822

    def is_agent(self, address: str | None) -> bool:
        folded = (address or "").casefold()
        return bool(folded) and any(fnmatch.fnmatchcase(folded, a) for a in self.agents)

    def __call__(self, contact: Contact) -> Contact:
        agent = contact.sender.email
        if not self.is_agent(agent) or contact.is_automatic:
            return contact
        attached = next(
            (a for a in contact.attachments if a.content_type == "message/rfc822"), None
        )
        if attached is not None:
            original = self._convert(attached.data)
            if original.sender.email and not self.is_agent(original.sender.email):
                refs = (original.thread.message_id,) if original.thread.message_id else ()
                return replace(
                    contact,
                    sender=original.sender,
                    subject=original.subject or _without_prefix(contact.subject),
                    text=_with_note(contact.text, original.text, agent),
                    # The original's files were found in a re-serialised copy of the
                    # attached message, not in this contact's raw bytes: they keep their own.
                    attachments=(
                        *(replace(a, part=None) for a in original.attachments),
                        *contact.attachments,
                    ),
                    thread=replace(contact.thread, references=(*contact.thread.references, *refs)),
                    forwarded_by=agent,
                )
        block = forwarded_block(contact.text)
        if block is None or self.is_agent(block.sender.email):
            return contact
        return replace(
            contact,
            sender=block.sender,
            subject=block.subject or _without_prefix(contact.subject),
            text=_with_note(block.note, block.text, agent),
            forwarded_by=agent,
        )


def _party(value: str) -> Party | None:
    mailto = _MAILTO.search(value)  # Outlook: "Alice Smith [mailto:alice@example.org]"
    if mailto is not None:
        value = f"{value[: mailto.start()].strip()} <{mailto.group(1)}>"
    for name, address in addresses([value]):
        clean = clean_line(decode_header(name)).strip("\"' ")
        return Party(email=address, name=clean or None)
    return None


def _unquote(line: str) -> str:
    return line[1:].lstrip(" ") if line.startswith(">") else line


def _without_prefix(subject: str) -> str:
    return _FORWARD_PREFIX.sub("", subject).strip() or subject


def _with_note(note: str, forwarded: str, agent: str | None) -> str:
    note = note.strip()
    head = f"Forwarded by {agent}" + (f":\n{note}" if note else ".")
    return f"{head}\n\n{forwarded.strip()}".strip()
