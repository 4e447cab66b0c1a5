"""Transports: how contacts get in (SMTP, IMAP, webhooks) and how answers get out (outbound/).

Every inbound transport implements :class:`channels.base.Channel`, turns what arrived into a
``normalizer.Contact`` with a pure converter and hands it to a ``normalizer.Intake``. Nothing in
this package imports ``router``.
"""
