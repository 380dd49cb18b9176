"""Where a shipped result came from, and reading it back.

Every experiment that writes a results file (``python -m lablib.<pkg>.experiment --out ...``)
records ``git_commit(__file__)`` beside its config and rebuild command, so a reader can check out
the code that produced a number; ``read_results(path, rebuild)`` loads such a file, and says how
to rebuild it when it is missing.

Shipped trained models (``torch.save`` files of named runs) go through ``save_runs`` and
``read_run``: each run is stored with the definition it was trained under, and reading one back
refuses a run whose definition the code has since changed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

__all__ = ["git_commit", "read_results", "save_runs", "read_run"]


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


def save_runs(out: str | Path, runs: dict[str, dict], module_file: str | Path, rebuild: str) -> Path:
    """Write trained runs ``{name: {"definition": str, "state_dict": ..., ...}}`` to ``out`` (torch.save),
    with the commit of ``module_file``'s code, the ``rebuild`` command and torch's version."""
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"runs": runs, "commit": git_commit(module_file), "rebuild": rebuild, "torch": str(torch.__version__)}, out)
    return out


def read_run(path: str | Path, name: str, definition: str, rebuild: str) -> dict:
    """Run ``name``'s entry in a file ``save_runs`` wrote, checked against the code's ``definition`` of it.

    FileNotFoundError, KeyError or ValueError (a run trained under another definition), each naming
    the ``rebuild`` command.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with: {rebuild}")
    stored = torch.load(path, weights_only=True)
    if name not in stored["runs"]:
        raise KeyError(f"{path} has no run {name!r}; rebuild it with: {rebuild}")
    entry = stored["runs"][name]
    if entry["definition"] != definition:
        raise ValueError(f"run {name!r} in {path} was trained as {entry['definition']}, but the code now defines "
                         f"{definition}; rebuild it with: {rebuild}")
    return entry
