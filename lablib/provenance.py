"""Where a shipped result came from, and reading it back.

Every experiment that writes a results file (``python -m lablib.<pkg>.experiment --out ...``)
records ``git_commit(__file__)`` beside its config and rebuild command, so a reader can check out
the code that produced a number; ``read_results(path, rebuild)`` loads such a file, and says how
to rebuild it when it is missing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

__all__ = ["git_commit", "read_results"]


def git_commit(path: str | Path) -> str:
    """HEAD's hash for the repository holding ``path``, with " (<folder>/ uncommitted)" when that folder has changes.

    ``path`` is a module's ``__file__`` (its folder is checked for uncommitted changes) or a folder.
    "unknown" outside a git checkout (an installed wheel) or without git.
    """
    here = Path(path).resolve()
    folder = here if here.is_dir() else here.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=folder,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], capture_output=True, text=True,
                               cwd=folder, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    if not head:
        return "unknown"
    return head + (f" ({folder.name}/ uncommitted)" if dirty else "")


def read_results(path: str | Path, rebuild: str) -> dict:
    """A shipped JSON results file as a dict; FileNotFoundError naming the ``rebuild`` command when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it: {rebuild}")
    return json.loads(path.read_text())
