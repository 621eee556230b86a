"""``make release``: the zip is complete, compiled for the target, pinned and reproducible, and
``make deploy`` installs it without a network."""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from mpy import run_micropython

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import deploy  # noqa: E402
import release  # noqa: E402

CP10_HEADER = b"C\x06\x00\x1f"  # CircuitPython, .mpy v6, bytecode only, 31-bit small ints


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The CircuitPython 10 release zip, built once, and the folder it unpacks to."""
    out = tmp_path_factory.mktemp("dist")
    (path,) = release.build(["10"], out_dir=out, log=lambda _t: None)
    unpacked = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(path) as zf:
        zf.extractall(unpacked)
    (top,) = list(unpacked.iterdir())
    return path, top


def test_zip_name_and_single_top_folder(built):
    path, top = built
    version = release.firmware_version()
    assert path.name == f"smartmeter-{version}-circuitpython-10.zip"
    assert top.name == path.name[:-4]


def test_every_firmware_module_is_mpy_for_circuitpython_10(built):
    _, top = built
    sources = release.firmware_sources()
    assert "smartmeter/app.py" in sources and "smartmeter/protocol/crypto.py" in sources
    for rel in sources:
        mpy = top / (rel[:-3] + ".mpy")
        assert mpy.is_file(), rel
        assert mpy.read_bytes()[:4] == CP10_HEADER, rel
    for mpy in top.rglob("*.mpy"):
        assert mpy.read_bytes()[:4] == CP10_HEADER, mpy
    assets = release.firmware_assets()
    assert "smartmeter/web/assets/app.js" in assets
    for rel in assets:
        assert (top / rel).read_bytes() == (ROOT / rel).read_bytes(), rel


def test_no_source_left_but_code_py(built):
    _, top = built
    py = sorted(p.relative_to(top).as_posix() for p in top.rglob("*.py"))
    assert py == ["code.py", "notice.py"]  # CircuitPython runs them as source, on any version
    names = sorted(p.relative_to(top).as_posix() for p in top.iterdir())
    assert names == [
        "README.txt",
        "code.py",
        "drivers",
        "lib",
        "notice.py",
        "settings.toml.example",
        "smartmeter",
    ]
    assert (top / "settings.toml.example").read_bytes() == (
        ROOT / "settings.toml.example"
    ).read_bytes()
    # code.py knows the target, so it can name it when the board cannot load the .mpy files
    assert re.search(r'^BUILT_FOR = "10"$', (top / "code.py").read_text(), re.M)
    readme = (top / "README.txt").read_text()
    assert "CircuitPython 10" in readme and "settings.toml" in readme and "METER_KEY" in readme


def test_libraries_at_the_pinned_versions(built):
    _, top = built
    libs = release.device_libraries()
    dev = release.read_pins(ROOT / "requirements-dev.txt")
    assert {m for m, _d, _v in libs} >= {"adafruit_httpserver", "adafruit_st7735r"}
    for module, dist, version in libs:
        assert dev[release._norm(dist)] == version  # the host tests run these very versions
        folder = top / "lib" / module
        main = folder / "__init__.mpy" if folder.is_dir() else top / "lib" / (module + ".mpy")
        data = main.read_bytes()
        assert data[:4] == CP10_HEADER, module
        assert version.encode() + b"\0" in data, (module, version)
        for rel, _src in release.library_files(module, dist, version):
            assert (top / "lib" / (rel[:-3] + ".mpy")).is_file(), rel
    # MQTT is our own client (smartmeter/outputs/mqttclient.py): no minimqtt on the board
    assert not (top / "lib" / "adafruit_minimqtt").exists()


def test_same_commit_gives_byte_identical_zip(built, tmp_path):
    path, _ = built
    (again,) = release.build(["10"], out_dir=tmp_path, log=lambda _t: None)
    assert again.read_bytes() == path.read_bytes()
    with zipfile.ZipFile(again) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == sorted(i.filename for i in infos)
        assert len({i.date_time for i in infos}) == 1


def test_compiler_numbers_static_qstrs_like_circuitpython():
    binary = release.ensure_compiler(release.TARGETS["10"][0], Path(sys.prefix))
    release.check_static_qstrs(binary)  # raises when a qstr number differs
    mpy = release.mpy_cross(binary, b"x = len\nprint('hello', x)\n", "t.py")
    table = release.qstr_table(mpy)
    assert release.CP_STATIC_QSTRS.index("len") + 1 in table
    assert release.CP_STATIC_QSTRS.index("print") + 1 in table
    assert "t.py" in table and "hello" in table


def test_compiled_firmware_runs_under_micropython(built, tmp_path):
    """The release's bytecode (header set back to MicroPython's 'M') decodes a real telegram."""
    _, top = built
    app = tmp_path / "app"
    shutil.copytree(top / "smartmeter", app / "smartmeter")
    for mpy in app.rglob("*.mpy"):
        data = bytearray(mpy.read_bytes())
        data[0] = ord("M")
        mpy.write_bytes(bytes(data))
    script = (
        "import json\n"
        "from smartmeter import build_info\n"
        "from smartmeter.protocol.pipeline import decode\n"
        "import smartmeter.protocol.pipeline as p\n"
        "assert p.__file__.endswith('.mpy'), p.__file__\n"
        "frames = json.load(open('frames.json'))['frames']\n"
        "f = [x for x in frames if x['id'] == 'netznoe-kaifa-ma309m-real'][0]\n"
        "r = decode(bytes.fromhex(f['raw_hex']), bytes.fromhex(f['key']))\n"
        "print(build_info.CIRCUITPYTHON, build_info.VERSION, len(r), type(r[0]).__name__)\n"
    )
    rc, out, err = run_micropython(
        script,
        files=[
            (str(app / "smartmeter"), "smartmeter"),
            ("tests/vectors/real-frames.json", "frames.json"),
        ],
        timeout=120,
    )
    assert rc == 0, out + err
    assert out.split()[-4:] == ["10", release.firmware_version(), "1", "Reading"], out


def test_incompatible_mpy_is_reported_by_code_py_in_plain_words(built, tmp_path):
    """A board that cannot load the .mpy files gets the message from code.py, not a traceback.

    The MicroPython VM refuses CircuitPython's 'C' header with the same ValueError
    ("incompatible .mpy file") a CircuitPython of another version raises.
    """
    _, top = built
    script = (
        "import sys\n"
        "class Impl:\n"
        "    name = 'circuitpython'\n"
        "    version = (9, 2, 1)\n"
        "src = open('code.py').read().replace('if sys.implementation.name ==', 'if False and')\n"
        "g = {'__name__': 'code'}\n"
        "exec(src, g)\n"
        "print('started', g['start'](Impl()))\n"
    )
    rc, out, err = run_micropython(
        script,
        files=[
            (str(top / "smartmeter"), "smartmeter"),
            (str(top / "code.py"), "code.py"),
            (str(top / "notice.py"), "notice.py"),
        ],
        timeout=60,
    )
    assert rc == 0, out + err
    assert (
        "This release is for CircuitPython 10, the board runs 9.2.1: download the matching zip"
        in out
    ), out
    assert "started False" in out
    assert "Traceback" not in out + err


def test_requirements_mismatch_is_one_line(tmp_path, capsys):
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "smartmeter", root / "smartmeter")
    for name in ("code.py", "settings.toml.example", "requirements-dev.txt"):
        shutil.copy(ROOT / name, root / name)
    (root / "requirements-device.txt").write_text(
        "adafruit_ticks==0.0.1  # adafruit-circuitpython-ticks\n"
    )
    with pytest.raises(release.ReleaseError, match="make them equal"):
        release.build(["10"], root=root, out_dir=tmp_path / "d", log=lambda _t: None)
    (root / "requirements-device.txt").write_text("adafruit_ticks\n")
    with pytest.raises(release.ReleaseError, match="module==version"):
        release.device_libraries(root)


# -- deploy from the release ---------------------------------------------------------------------


def test_deploy_release_twice_copies_nothing_the_second_time(built, tmp_path):
    path, top = built
    drive = tmp_path / "CIRCUITPY"
    (drive / "lib" / "adafruit_ticks").mkdir(parents=True)
    (drive / "boot_out.txt").write_text("Adafruit CircuitPython 10.0.3 on 2025-10-17; S3\n")
    # left from a source install: would shadow the release's .mpy files
    (drive / "smartmeter").mkdir()
    (drive / "smartmeter" / "app.py").write_text("OLD = 1\n")
    (drive / "smartmeter" / "gone.mpy").write_bytes(b"C\x06\x00\x1f")
    (drive / "lib" / "adafruit_ticks.py").write_text("old\n")
    (drive / "lib" / "other.mpy").write_bytes(b"keep")
    assert deploy.board_version(drive) == "10.0.3"
    assert deploy.release_zip("10.0.3", path.parent) == path

    payload = deploy.Payload.from_zip(path)
    assert payload.files[-1] == "code.py"
    lines = []
    written = deploy.deploy(drive, payload=payload, log=lines.append)
    assert written == len(payload.files)
    assert not (drive / "smartmeter" / "app.py").exists()
    assert not (drive / "smartmeter" / "gone.mpy").exists()
    assert not (drive / "lib" / "adafruit_ticks.py").exists()
    assert (drive / "lib" / "other.mpy").read_bytes() == b"keep"  # not ours: untouched
    assert (drive / "settings.toml").read_bytes() == (top / "settings.toml.example").read_bytes()
    for rel in payload.files:
        assert (drive / rel).read_bytes() == (top / rel).read_bytes(), rel

    (drive / "settings.toml").write_text('METER_KEY = "mine"\n')
    before = {p: p.stat().st_mtime_ns for p in drive.rglob("*") if p.is_file()}
    lines.clear()
    assert deploy.deploy(drive, payload=deploy.Payload.from_zip(path), log=lines.append) == 0
    assert {p: p.stat().st_mtime_ns for p in drive.rglob("*") if p.is_file()} == before
    assert (drive / "settings.toml").read_text() == 'METER_KEY = "mine"\n'
    assert lines[-1].endswith(f"0 file(s) written, 0 removed, {len(payload.files)} unchanged")


def test_deploy_errors_are_one_line(built, tmp_path, capsys):
    path, _ = built
    drive = tmp_path / "CIRCUITPY"
    drive.mkdir()
    (drive / "boot_out.txt").write_text("Adafruit CircuitPython 9.2.1 on 2025-01-01; S3\n")
    assert deploy.main([str(drive), "--dist", str(path.parent)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "deploy: the board runs CircuitPython 9.2.1 but the releases are for 10.x: install "
        "CircuitPython 10.x on the board (or build one with `make release RELEASE_MAJORS=9`)"
    ]
    assert deploy.main([str(tmp_path / "nope")]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "is the CIRCUITPY drive mounted?" in out[0]
    assert deploy.main([str(drive), "--dist", str(tmp_path / "empty")]) == 1
    assert "run `make release`" in capsys.readouterr().out


def _no_network_runner():
    if shutil.which("unshare") is None or shutil.which("make") is None:
        return None
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    return ["unshare", "-n"] if probe.returncode == 0 else None


def test_make_deploy_without_network(tmp_path, require):
    """`make deploy CIRCUITPY=...` in a network namespace without any interface but loopback."""
    runner = _no_network_runner()
    require(runner is not None, "unshare -n (network namespaces) is not available")
    assert runner is not None
    assert release.main(["--install-compilers"]) == 0  # what `make .venv` does, with network
    drive = tmp_path / "CIRCUITPY"
    drive.mkdir()
    (drive / "boot_out.txt").write_text("Adafruit CircuitPython 10.1.0 on 2025-11-01; S3\n")
    env = dict(os.environ, PIP_NO_INDEX="1")
    dist = tmp_path / "dist"
    cmd = [*runner, "make", "-s", "-C", str(ROOT), "-o", ".venv/.stamp", "-o", ".venv"]
    cmd += ["deploy", f"CIRCUITPY={drive}", f"RELEASE_DIR={dist}"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stdout + first.stderr
    assert (drive / "code.py").is_file() and (drive / "lib" / "adafruit_httpserver").is_dir()
    assert (drive / "settings.toml").is_file()
    snapshot = {p: p.read_bytes() for p in drive.rglob("*") if p.is_file()}
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert " 0 file(s) written, 0 removed" in second.stdout, second.stdout
    assert {p: p.read_bytes() for p in drive.rglob("*") if p.is_file()} == snapshot

    # circup cannot reach the internet here: one line that says what to do, no traceback
    third = subprocess.run(
        [*cmd, "LIBS=circup"], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert third.returncode != 0
    assert "Traceback" not in third.stdout + third.stderr
    assert third.stdout.strip().splitlines() == [
        "deploy: circup could not install the libraries (no internet? details in .venv/circup.log):"
        " run again without LIBS=circup to use the release's lib/"
    ]


# -- version check -------------------------------------------------------------------------------


class _Impl:
    def __init__(self, name, version):
        self.name = name
        self.version = version


def test_firmware_version_names_target_and_board(monkeypatch):
    from sim.hardware import Console, Hardware, ManualClock
    from smartmeter import __version__, build_info, config
    from smartmeter import app as app_mod

    assert app_mod.firmware_version() == (__version__ + " src", None)  # from source, on a PC
    monkeypatch.setattr(build_info, "CIRCUITPYTHON", "10")
    monkeypatch.setattr(build_info, "VERSION", "1.2.3")
    assert app_mod.firmware_version(_Impl("circuitpython", (10, 0, 3))) == (
        "1.2.3 CP10/10.0.3",
        None,
    )
    text, problem = app_mod.firmware_version(_Impl("circuitpython", (9, 2, 1)))
    assert text == "1.2.3 CP10/9.2.1"
    assert problem == "release for CircuitPython 10, board runs 9.2.1: get the matching zip"

    # the app shows its version (system screen, /api/status, 'd' on the console)
    monkeypatch.setattr(app_mod, "firmware_version", lambda: (text, problem))
    hw = Hardware(clock=ManualClock(start_epoch=1_700_000_000), console=Console(out=None))
    firmware = app_mod.build(hw, config.load(lambda _n: None), web=False)
    assert firmware.state.version == "1.2.3 CP10/9.2.1"
    assert problem in firmware.state.config_problems
    dump = firmware.status_dump()
    assert dump[0].startswith("smartmeter 1.2.3 CP10/9.2.1")
    assert "  setting: " + problem in dump


@pytest.fixture
def fake_web_workflow():
    """A board behind CircuitPython's web workflow file API (test_tools_deploy's fake)."""
    import threading
    from http.server import ThreadingHTTPServer

    from test_tools_deploy import FakeBoard, make_handler

    fake = FakeBoard()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield fake, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_webdeploy_release_twice_uploads_nothing_the_second_time(built, fake_web_workflow):
    """``make deploy HOST=...``: the release over the web workflow; settings.toml is kept."""
    import webdeploy
    from test_tools_deploy import PASSWORD

    path, top = built
    fake, url = fake_web_workflow
    board = webdeploy.Board(url, PASSWORD, timeout=5)
    payload = deploy.Payload.from_zip(path)
    written, skipped = webdeploy.deploy(board, payload=payload)
    assert (written, skipped) == (len(payload.files), 0)
    assert (
        fake.files["lib/adafruit_httpserver/server.mpy"][0]
        == (top / "lib" / "adafruit_httpserver" / "server.mpy").read_bytes()
    )
    assert fake.files["settings.toml"][0] == (top / "settings.toml.example").read_bytes()
    fake.files["settings.toml"] = (b'METER_KEY = "mine"\n', 0)
    fake.requests.clear()
    assert webdeploy.deploy(board, payload=deploy.Payload.from_zip(path)) == (
        0,
        len(payload.files),
    )
    assert not [p for m, p in fake.requests if m == "PUT"]
    assert fake.files["settings.toml"][0] == b'METER_KEY = "mine"\n'
