"""Where a shipped result came from: the git commit of the code that made it.

Every experiment that writes a results file (``python -m lablib.<pkg>.experiment --out ...``)
records ``git_commit(__file__)`` beside its config and rebuild command, so a reader can check out
the code that produced a number.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["git_commit"]


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
