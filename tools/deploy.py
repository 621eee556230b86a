#!/usr/bin/env python3
"""Copy the firmware onto a mounted CIRCUITPY drive (``make deploy CIRCUITPY=/path``).

Copies ``code.py`` (plus ``boot.py``/``safemode.py`` when the repository has them) and every
``*.py`` under ``smartmeter/`` and ``drivers/``, plus every file in an ``assets/`` folder there
(the web pages, stylesheet and script the web server streams from flash). Files whose content is
already identical are skipped, so flash is not rewritten needlessly and the board auto-reloads
once, after ``code.py``, which is written last. An existing ``settings.toml`` on the drive is
never touched; when the drive has none, ``settings.toml.example`` is copied there as
``settings.toml``. Bundle libraries (``lib/``) are installed separately by circup. Standard
library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ROOT_FILES = ("boot.py", "safemode.py", "code.py")  # code.py last: it triggers the reload
PACKAGES = ("smartmeter", "drivers")
SETTINGS = "settings.toml"
SETTINGS_EXAMPLE = "settings.toml.example"


def device_files(root: Path = REPO_ROOT) -> list[str]:
    """Return the repository-relative POSIX paths to put on the board, ``code.py`` last."""
    files: list[str] = []
    for pkg in PACKAGES:
        base = root / pkg
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
                continue
            if not path.is_file() or (path.suffix != ".py" and "assets" not in rel.parts[:-1]):
                continue
            files.append(rel.as_posix())
    files.extend(name for name in ROOT_FILES if (root / name).is_file())
    return files


def device_dirs(files: list[str]) -> list[str]:
    """Return every directory the given files need, parents first."""
    dirs: set[str] = set()
    for rel in files:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def _same(src: Path, dst: Path) -> bool:
    if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
        return False
    return dst.read_bytes() == src.read_bytes()


def deploy(drive: Path, root: Path = REPO_ROOT, dry_run: bool = False) -> int:
    """Copy the firmware to ``drive``; return the number of firmware files written."""
    if not drive.is_dir():
        raise SystemExit(f"deploy: {drive} is not a directory (is CIRCUITPY mounted?)")
    if not (drive / "boot_out.txt").exists():
        print(f"deploy: warning: {drive} has no boot_out.txt - is it really a CIRCUITPY drive?")
    files = device_files(root)
    if "code.py" not in files:
        print("deploy: warning: the repository has no code.py yet")
    written = 0
    for rel in files:
        src, dst = root / rel, drive / rel
        if _same(src, dst):
            continue
        print(f"  {rel}")
        written += 1
        if not dry_run:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)

    settings = drive / SETTINGS
    example = root / SETTINGS_EXAMPLE
    if settings.exists():
        print(f"deploy: keeping the drive's {SETTINGS}")
    elif example.is_file():
        print(f"deploy: no {SETTINGS} on the drive: copying {SETTINGS_EXAMPLE} - edit it there")
        if not dry_run:
            shutil.copyfile(example, settings)
    else:
        print(f"deploy: warning: neither the drive's {SETTINGS} nor {SETTINGS_EXAMPLE} exist")
    if not dry_run and hasattr(os, "sync"):
        os.sync()
    print(f"deploy: {written} file(s) written to {drive}, {len(files) - written} unchanged")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("drive", type=Path, help="mount point of the CIRCUITPY drive")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be copied")
    args = parser.parse_args(argv)
    deploy(args.drive, dry_run=args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
