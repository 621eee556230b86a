#!/usr/bin/env python3
"""Install the firmware onto a mounted CIRCUITPY drive (``make deploy CIRCUITPY=/path``).

By default it installs the release zip built by ``make release`` for the CircuitPython major
version the board runs (read from the drive's ``boot_out.txt``): ``code.py``, the compiled
``smartmeter/`` and ``drivers/`` packages and the pinned bundle libraries in ``lib/``. No
network is needed. ``--source`` copies the repository's ``.py`` files instead (for development;
the libraries then come from circup or a release). Either way every file in an ``assets/``
folder of the packages goes too (the web pages, stylesheet and script the web server streams
from flash).

Files whose content is already identical are skipped, so flash is not rewritten needlessly and a
second run copies nothing; ``code.py`` is written last because writing it makes the board
reload. Firmware ``.py`` files left on the drive by a source install would shadow the release's
``.mpy`` files (CircuitPython imports ``x.py`` before ``x.mpy``) and are removed, as are modules
the release no longer has. An existing ``settings.toml`` on the drive is never touched; when the
drive has none, ``settings.toml.example`` is copied there as ``settings.toml``.
Standard library only. Errors are one line saying what to do.
"""

from __future__ import annotations

import argparse
import calendar
import os
import re
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ROOT_FILES = ("boot.py", "safemode.py", "notice.py", "code.py")  # code.py last: it reloads
PACKAGES = ("smartmeter", "drivers")
SETTINGS = "settings.toml"
SETTINGS_EXAMPLE = "settings.toml.example"
DIST = REPO_ROOT / "dist"
DEFAULT_MAJOR = "10"


class DeployError(Exception):
    """Something the user must fix; the message says what."""


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


class Payload:
    """What goes onto the board: paths (``code.py`` last), their bytes and time stamps."""

    def __init__(self, label: str, release: bool = False) -> None:
        self.label = label
        self.release = release
        self.files: list[str] = []
        self.data: dict[str, bytes] = {}
        self.mtime_ns: dict[str, int] = {}
        self.settings_example: bytes | None = None

    def add(self, rel: str, data: bytes, mtime_ns: int) -> None:
        self.files.append(rel)
        self.data[rel] = data
        self.mtime_ns[rel] = mtime_ns

    def without_libs(self) -> Payload:
        out = Payload(self.label, self.release)
        for rel in self.files:
            if not rel.startswith("lib/"):
                out.add(rel, self.data[rel], self.mtime_ns[rel])
        out.settings_example = self.settings_example
        return out

    def lib_modules(self) -> set[str]:
        """Top-level names under lib/ (``adafruit_ticks``, ``adafruit_httpserver``)."""
        return {rel.split("/")[1].rsplit(".", 1)[0] for rel in self.files if rel.startswith("lib/")}

    @classmethod
    def from_repo(cls, root: Path = REPO_ROOT) -> Payload:
        out = cls(f"source of {root}")
        for rel in device_files(root):
            path = root / rel
            out.add(rel, path.read_bytes(), path.stat().st_mtime_ns)
        example = root / SETTINGS_EXAMPLE
        out.settings_example = example.read_bytes() if example.is_file() else None
        return out

    @classmethod
    def from_zip(cls, path: Path) -> Payload:
        """Read a release zip (one top folder holding the drive's files)."""
        out = cls(path.name, release=True)
        try:
            zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise DeployError(f"cannot read {path} ({exc}): run `make release` again") from None
        with zf:
            last = []
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                rel = info.filename.split("/", 1)[1] if "/" in info.filename else info.filename
                data = zf.read(info)
                mtime = calendar.timegm((*info.date_time, 0, 0, 0)) * 1_000_000_000
                if rel == SETTINGS_EXAMPLE:
                    out.settings_example = data
                elif rel == "README.txt":
                    continue
                elif rel in ROOT_FILES:
                    last.append((ROOT_FILES.index(rel), rel, data, mtime))
                else:
                    out.add(rel, data, mtime)
            for _, rel, data, mtime in sorted(last):
                out.add(rel, data, mtime)
        if "code.py" not in out.data:
            raise DeployError(f"{path} has no code.py: it is not a release zip")
        return out


def board_version(drive: Path) -> str | None:
    """The CircuitPython version in the drive's boot_out.txt ("10.0.3"), or None."""
    try:
        text = (drive / "boot_out.txt").read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"CircuitPython (\d+\.\d+\.\d+\S*)", text)
    return m.group(1) if m else None


def release_zip(version: str | None, dist: Path = DIST) -> Path:
    """The release zip for a board running CircuitPython ``version`` (None: the default)."""
    major = version.split(".")[0] if version else DEFAULT_MAJOR
    zips = sorted(dist.glob(f"smartmeter-*-circuitpython-{major}.zip")) if dist.is_dir() else []
    if zips:
        return zips[-1]
    built = sorted(p.name.rsplit("-", 1)[1][:-4] for p in dist.glob("smartmeter-*.zip"))
    if version and built:
        raise DeployError(
            f"the board runs CircuitPython {version} but the releases are for "
            f"{', '.join(built)}.x: install CircuitPython {built[-1]}.x on the board "
            f"(or build one with `make release RELEASE_MAJORS={major}`)"
        )
    raise DeployError(f"no release zip for CircuitPython {major} in {dist}: run `make release`")


def _same(data: bytes, dst: Path) -> bool:
    try:
        if dst.stat().st_size != len(data):
            return False
        return dst.read_bytes() == data
    except OSError:
        return False


def stale_files(drive: Path, payload: Payload) -> list[str]:
    """Drive files a release install must remove so that its .mpy files are the ones imported.

    Firmware modules (any ``.py``, and ``.mpy`` files the release does not have) under
    smartmeter/ and drivers/, and ``.py`` versions of the libraries the release puts in lib/.
    """
    out = []
    wanted = set(payload.files)
    for pkg in PACKAGES:
        base = drive / pkg
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(drive).as_posix()
            if path.is_file() and path.suffix in (".py", ".mpy") and rel not in wanted:
                out.append(rel)
    lib = drive / "lib"
    for module in sorted(payload.lib_modules()):
        single = lib / (module + ".py")
        if single.is_file():
            out.append(single.relative_to(drive).as_posix())
        package = lib / module
        if package.is_dir():
            for path in sorted(package.rglob("*.py")):
                out.append(path.relative_to(drive).as_posix())
    return out


def deploy(
    drive: Path,
    root: Path = REPO_ROOT,
    dry_run: bool = False,
    payload: Payload | None = None,
    log=print,
) -> int:
    """Copy the firmware to ``drive``; return the number of firmware files written."""
    if not drive.is_dir():
        raise DeployError(f"{drive} is not a directory: is the CIRCUITPY drive mounted?")
    if not (drive / "boot_out.txt").exists():
        log(f"deploy: warning: {drive} has no boot_out.txt - is it really a CIRCUITPY drive?")
    if payload is None:
        payload = Payload.from_repo(root)
    if "code.py" not in payload.data:
        log("deploy: warning: there is no code.py to copy")
    removed = 0
    if payload.release:
        for rel in stale_files(drive, payload):
            log(f"  removed {rel}")
            removed += 1
            if not dry_run:
                (drive / rel).unlink()
    written = 0
    try:
        for rel in payload.files:
            data, dst = payload.data[rel], drive / rel
            if _same(data, dst):
                continue
            log(f"  {rel}")
            written += 1
            if not dry_run:
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(dst.name + ".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, dst)

        settings = drive / SETTINGS
        if settings.exists():
            log(f"deploy: keeping the drive's {SETTINGS}")
        elif payload.settings_example is not None:
            log(f"deploy: no {SETTINGS} on the drive: copying {SETTINGS_EXAMPLE} - edit it there")
            if not dry_run:
                settings.write_bytes(payload.settings_example)
        else:
            log(f"deploy: warning: neither the drive's {SETTINGS} nor {SETTINGS_EXAMPLE} exist")
        if not dry_run and hasattr(os, "sync"):
            os.sync()
    except OSError as exc:
        what = exc.strerror or str(exc)
        raise DeployError(
            f"writing to {drive} failed ({what}): check that the drive is mounted writable and"
            " has space (delete old files from it), then run again"
        ) from None
    log(
        f"deploy: {payload.label}: {written} file(s) written, {removed} removed, "
        f"{len(payload.files) - written} unchanged"
    )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("drive", type=Path, help="mount point of the CIRCUITPY drive")
    parser.add_argument("--release", type=Path, help="release zip (default: the one in dist/)")
    parser.add_argument("--dist", type=Path, default=DIST, help="folder of the release zips")
    parser.add_argument("--source", action="store_true", help="copy the repository's .py files")
    parser.add_argument("--no-libs", action="store_true", help="leave lib/ alone")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be copied")
    args = parser.parse_args(argv)
    try:
        if not args.drive.is_dir():
            raise DeployError(f"{args.drive} is not a directory: is the CIRCUITPY drive mounted?")
        if args.source:
            payload = Payload.from_repo()
        else:
            version = board_version(args.drive)
            path = args.release or release_zip(version, args.dist)
            payload = Payload.from_zip(path)
            print(
                f"deploy: {path.name} onto {args.drive}"
                f" (board runs CircuitPython {version or 'unknown: no boot_out.txt'})"
            )
        if args.no_libs:
            payload = payload.without_libs()
        deploy(args.drive, dry_run=args.dry_run, payload=payload)
    except DeployError as exc:
        print(f"deploy: {exc}")
        return 1
    except OSError as exc:
        print(f"deploy: {exc.strerror or exc} ({exc.filename or args.drive}): check the drive")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
