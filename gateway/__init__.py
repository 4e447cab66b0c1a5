"""The composition root: CLI, config, HTTP app, storage wiring, start/stop order.

Nothing outside ``gateway`` imports it; it knows ``channels``, ``router`` and ``normalizer``.
"""
