"""Create the kit's virtual environment and install the package with its extras.

Run by `make setup` (and by any target that needs the environment). Fails early, with the fix,
when the interpreter is too old.

    python3 scripts/setup_venv.py .venv                         # from PyPI (about 130 MB to download, 700 MB installed)
    python3 scripts/setup_venv.py --build-wheelhouse wheelhouse  # download every wheel once (make wheelhouse)
    python3 scripts/setup_venv.py .venv --wheelhouse wheelhouse  # install with no network at all

The wheelhouse holds a wheel of every package setup needs (pip, setuptools and wheel included),
built for this machine's Python and platform; copy it to the classroom laptops on a USB stick.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

MIN = (3, 11)
EXTRAS = ".[notebook,test,lint]"
#: Build tools the editable install needs when pip may not reach an index (pyproject.toml build-system).
BUILD_TOOLS = ["pip", "setuptools>=77", "wheel"]


def _fail(message: str, fix: str) -> int:
    print(f"ERROR: {message}\nfix: {fix}", file=sys.stderr)
    return 1


def _run(argv: list[str], fix: str) -> int:
    proc = subprocess.run(argv)
    if proc.returncode != 0:
        return _fail(f"`{' '.join(argv)}` failed (exit {proc.returncode}).", fix)
    return 0


def install_steps(py: str, wheelhouse: Path | None) -> list[list[str]]:
    """The pip commands of a setup: from PyPI, or only from ``wheelhouse`` (``--no-index``)."""
    if wheelhouse is None:
        return [
            [py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
            [py, "-m", "pip", "install", "--quiet", "-e", EXTRAS],
        ]
    offline = ["--no-index", "--find-links", str(wheelhouse)]
    return [
        [py, "-m", "pip", "install", "--quiet", *offline, "--upgrade", *BUILD_TOOLS],
        [py, "-m", "pip", "install", "--quiet", *offline, "--no-build-isolation", "-e", EXTRAS],
    ]


def build_wheelhouse(target: Path) -> int:
    """Download (or build) a wheel of every package setup needs into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    print(f"[wheelhouse] downloading every package setup needs into {target}/ (about 130 MB, once)")
    with tempfile.TemporaryDirectory(prefix="scalelab-wheelhouse-") as tmp:
        build_env = Path(tmp) / "venv"
        venv.EnvBuilder(with_pip=True).create(build_env)
        py = str(build_env / "bin" / "python")
        fix = "check your network or proxy, then re-run `make wheelhouse`"
        for argv in ([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                     [py, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(target), *BUILD_TOOLS, EXTRAS]):
            if rc := _run(argv, fix):
                return rc
    # the kit's own wheel is installed editable from the checkout, not from the wheelhouse
    for own in target.glob("scalelab-*.whl"):
        own.unlink()
    count = len(list(target.glob("*.whl")))
    print(f"[wheelhouse] done: {count} wheels in {target}/; install with `make setup WHEELHOUSE={target}` (no network needed)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create the kit's .venv (or build an offline wheelhouse).")
    parser.add_argument("target", nargs="?", default=".venv", help="the virtual environment to create")
    parser.add_argument("--wheelhouse", type=Path, default=None, help="install only from this folder of wheels (no network)")
    parser.add_argument("--build-wheelhouse", type=Path, default=None, metavar="DIR", help="download every wheel setup needs into DIR")
    args = parser.parse_args(argv)
    if sys.version_info < MIN:
        return _fail(f"scalelab needs Python {MIN[0]}.{MIN[1]}+, this is {sys.version.split()[0]}.",
                     "install Python 3.11 or newer and run `make setup PYTHON=python3.11`")
    if args.build_wheelhouse is not None:
        return build_wheelhouse(args.build_wheelhouse)
    wheelhouse = args.wheelhouse
    if wheelhouse is not None and not any(wheelhouse.glob("*.whl")):
        return _fail(f"no wheels in {wheelhouse}/", "build it on a machine with network first: `make wheelhouse`, then copy the folder")
    target = Path(args.target)
    py = target / "bin" / "python"
    if not py.exists():
        print(f"[setup] creating {target} with Python {sys.version.split()[0]}")
        venv.EnvBuilder(with_pip=True).create(target)
    where = f"from {wheelhouse}/ (no network)" if wheelhouse else "from PyPI (first time: about 130 MB to download, 700 MB installed)"
    print(f"[setup] installing scalelab and its extras {where}")
    fix = ("check that the wheelhouse was built for this Python and platform (`make wheelhouse` on a similar machine)"
           if wheelhouse else "check your network or proxy, then re-run `make setup` (or use an offline wheelhouse: `make wheelhouse`)")
    for step in install_steps(str(py), wheelhouse):
        if rc := _run(step, fix):
            return rc
    (target / ".installed").write_text("ok\n")
    print(f"[setup] done: {target}/bin/scalelab")
    return 0


if __name__ == "__main__":
    sys.exit(main())
