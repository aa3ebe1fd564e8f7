"""Create the kit's virtual environment and install the package with its extras.

Run by `make setup` (and by any target that needs the environment). Fails early, with the fix,
when the interpreter is too old.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

MIN = (3, 11)


def main() -> int:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".venv")
    if sys.version_info < MIN:
        print(
            f"ERROR: scalelab needs Python {MIN[0]}.{MIN[1]}+, this is {sys.version.split()[0]}.\n"
            "fix: install Python 3.11 or newer and run `make setup PYTHON=python3.11`",
            file=sys.stderr,
        )
        return 1
    py = target / "bin" / "python"
    if not py.exists():
        print(f"[setup] creating {target} with Python {sys.version.split()[0]}")
        venv.EnvBuilder(with_pip=True).create(target)
    print("[setup] installing scalelab and its extras (first time: a few minutes)")
    steps = [
        [str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(py), "-m", "pip", "install", "--quiet", "-e", ".[notebook,test]"],
    ]
    for argv in steps:
        proc = subprocess.run(argv)
        if proc.returncode != 0:
            print(f"ERROR: `{' '.join(argv)}` failed (exit {proc.returncode}).\nfix: check your network or proxy, then re-run `make setup`", file=sys.stderr)
            return proc.returncode
    (target / ".installed").write_text("ok\n")
    print(f"[setup] done: {target}/bin/scalelab")
    return 0


if __name__ == "__main__":
    sys.exit(main())
