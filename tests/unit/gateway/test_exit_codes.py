"""Every ``spoc`` command exits with the codes of ``gateway.exit_codes``: no module defines its
own (four did, each ``0, 1`` or ``0, 1, 2``, free to drift from the README's table)."""

from __future__ import annotations

import ast
from pathlib import Path

GATEWAY = Path(__file__).resolve().parents[3] / "gateway"


def own_exit_codes(source: str) -> list[str]:
    """The ``EXIT_*`` names ``source`` assigns itself."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name) and name.id.startswith("EXIT_"):
                    names.append(name.id)
    return names


def test_the_exit_codes_are_defined_once_for_every_command() -> None:
    defined = {
        str(path.relative_to(GATEWAY)): own
        for path in sorted(GATEWAY.rglob("*.py"))
        if (own := own_exit_codes(path.read_text(encoding="utf-8")))
    }
    assert defined == {"exit_codes.py": ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]}


def test_the_check_sees_a_tuple_assignment() -> None:
    assert own_exit_codes("EXIT_OK, EXIT_FAILED = 0, 1\nX = 2\n") == ["EXIT_OK", "EXIT_FAILED"]
