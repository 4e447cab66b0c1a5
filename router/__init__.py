"""Decisions and persistence: dedupe, identity, threading, triage, assignment, the outbox.

Public entry points: :class:`router.store.Store`, :class:`router.router.Router` (the channels'
``Intake``), :class:`router.tickets.TicketService`, :class:`router.outbox.Outbox`.
"""
