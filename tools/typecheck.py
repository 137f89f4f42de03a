"""Run mypy (strict, as configured in pyproject.toml) over the ``spanreel`` import package.

The repository maps three top-level folders into one import package (``instrumentation/`` →
``spanreel.instrumentation`` and so on, via setuptools ``package-dir``). mypy cannot follow that
mapping, so this script lays the package out as Python sees it — a temporary tree of symlinks
``spanreel/{*.py, instrumentation, collector, replay}`` — and checks that. Exit code is mypy's.

Usage: ``python tools/typecheck.py [extra mypy args]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("instrumentation", "collector", "replay")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="spanreel-typecheck-") as tmp:
        pkg = Path(tmp) / "spanreel"
        pkg.mkdir()
        for entry in (ROOT / "spanreel").iterdir():
            if entry.suffix in (".py", ".typed"):
                (pkg / entry.name).symlink_to(entry)
        for sub in SUBPACKAGES:
            (pkg / sub).symlink_to(ROOT / sub, target_is_directory=True)
        cmd = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            *sys.argv[1:],
            str(pkg),
        ]
        return subprocess.call(cmd, cwd=tmp)


if __name__ == "__main__":
    sys.exit(main())
