"""The rules of docs/architecture.md, checked on the import statements of the firmware (AST).

- ``smartmeter/protocol/`` imports only ``smartmeter/protocol/`` and ``smartmeter.timeutil``.
- Network outputs (``config.OUTPUTS`` and the price fetch) never import each other; they may use
  their helpers in ``outputs/`` (``ring``, ``hass``, ``mqttclient``) and the core.
- Inside ``smartmeter/`` only ``device.py`` imports ``app`` (and ``assemble``, which ``app.build``
  loads for the boot), and nothing imports ``device``.
- ``interfaces`` is documentation: nothing in ``smartmeter/`` imports it (``Hardware`` lives in
  ``hardware``, which only ``boardio.py``, the board's hardware that ``device.py`` builds,
  imports).
- ``drivers/`` import nothing from ``smartmeter``.
- Package ``__init__.py`` files under ``smartmeter/`` stay empty (lazy loading on the device).
"""

from __future__ import annotations

import ast
from pathlib import Path

from _support import REPO_ROOT

from smartmeter.config import OUTPUTS

PKG = REPO_ROOT / "smartmeter"


def _module(path: Path) -> str:
    rel = path.relative_to(REPO_ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the ``smartmeter``/``drivers`` modules ``path`` imports."""
    tree = ast.parse(path.read_text(), str(path))
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # "from . import x" / "from .outputs import ring": each name may be a module
            names = [prefix + "." + a.name for a in node.names] + [prefix]
        else:
            continue
        for name in names:
            if name.split(".")[0] in ("smartmeter", "drivers"):
                out.add(name)
    return out


def _is_module(name: str) -> bool:
    path = REPO_ROOT / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def module_imports(path: Path) -> set[str]:
    return {n for n in imports_of(path) if _is_module(n) and n != "smartmeter"}


def _files(root: Path):
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_checker_sees_relative_and_absolute_imports():
    found = module_imports(PKG / "outputs" / "graphite.py")
    assert {"smartmeter.outputs.ring", "smartmeter.timeutil", "smartmeter.netutil"} <= found
    assert "smartmeter.protocol.reading" in found
    assert "smartmeter.app" in module_imports(PKG / "device.py")


def test_protocol_imports_only_protocol_and_timeutil():
    bad = {}
    for path in _files(PKG / "protocol"):
        wrong = {
            n
            for n in module_imports(path)
            if not n.startswith("smartmeter.protocol") and n != "smartmeter.timeutil"
        }
        if wrong:
            bad[path.name] = wrong
    assert bad == {}


def test_outputs_never_import_each_other():
    outputs = {"smartmeter.outputs." + name for name, _key, _label in OUTPUTS}
    outputs.add("smartmeter.outputs.prices")
    bad = {}
    for mod in outputs:
        path = REPO_ROOT / Path(*mod.split(".")).with_suffix(".py")
        wrong = (module_imports(path) & outputs) - {mod}
        if wrong:
            bad[mod] = wrong
    assert bad == {}


def test_only_device_imports_app_and_interfaces():
    for target, allowed in (
        ("smartmeter.app", {"smartmeter.device", "smartmeter.assemble"}),
        ("smartmeter.assemble", {"smartmeter.app"}),
        ("smartmeter.interfaces", set()),
        ("smartmeter.hardware", {"smartmeter.boardio", "smartmeter.interfaces"}),
        ("smartmeter.boardio", {"smartmeter.device"}),
        ("smartmeter.device", set()),
    ):
        users = {_module(p) for p in _files(PKG) if target in module_imports(p)}
        assert users <= allowed, (target, users - allowed)


def test_drivers_are_standalone():
    for path in _files(REPO_ROOT / "drivers"):
        assert not {n for n in module_imports(path) if n.startswith("smartmeter")}, path


def test_package_init_files_stay_empty():
    for path in PKG.rglob("__init__.py"):
        if path.parent == PKG:
            continue  # the top package: __version__ and decode() (no imports at load)
        assert path.read_text().strip() == "", path


def test_what_a_board_without_wifi_runs_never_loads_network_or_settings_code():
    # A board's heap holds every module it loads (the CircuitPython VM: netutil 2 KB, the
    # settings' reader 16 KB). What runs on a board without WiFi - the decoder, the CSV log,
    # usage and cost, the display, the loop - must not import the network helpers, and after
    # boot nothing there may import the settings' reader (app.build unloads it): only the web
    # page and the boot (device, overrides) read settings.
    offline = [PKG / "app.py", PKG / "assemble.py", PKG / "state.py", PKG / "configvalues.py"]
    offline += _files(PKG / "datalog") + _files(PKG / "ui") + _files(PKG / "protocol")
    for path in offline:
        found = module_imports(path)
        assert "smartmeter.netutil" not in found, path
        assert "smartmeter.overrides" not in found, path
        # configvalues: Config() takes its defaults from the table (config.load at boot,
        # tests), never in the loop
        if path.name != "configvalues.py":
            assert "smartmeter.config" not in found, path
