"""Environment for tests that run ``python -m bot`` in a child process."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def child_env(variables: dict[str, str], *, path: str = "/usr/bin:/bin") -> dict[str, str]:
    """Only the given variables, plus PYTHONPATH so the child runs this checkout's code, whichever checkout
    the virtualenv was installed (editable) from."""
    return {"PATH": path, "PYTHONPATH": str(REPO), **variables}
