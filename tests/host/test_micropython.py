"""The MicroPython VM runner (tests/host/mpy) itself: it must really run MicroPython, copy host
files in, and report failures through its exit status and traceback."""

import json

from mpy import REPO_ROOT, run_micropython


def test_runs_micropython_not_cpython():
    rc, out, err = run_micropython(
        "import sys\nprint(sys.implementation.name)\nprint(sys.implementation.version[:2])\n"
    )
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "micropython"
    assert lines[1] == "(1, 27)"


def test_dialect_difference_is_visible():
    # MicroPython rejects keyword arguments to int.from_bytes; CPython accepts them. This is the
    # kind of mistake the runner exists to catch.
    script = (
        "try:\n"
        "    int.from_bytes(b'\\x01\\x02', byteorder='big')\n"
        "    print('accepted')\n"
        "except TypeError:\n"
        "    print('rejected')\n"
        "print(int.from_bytes(b'\\x01\\x02', 'big'))\n"
    )
    rc, out, err = run_micropython(script)
    assert rc == 0, err
    assert out.split() == ["rejected", "258"]


def test_exception_gives_nonzero_exit_and_traceback(tmp_path):
    helper = tmp_path / "helper_mod.py"
    helper.write_text("def explode():\n    raise ValueError('boom 42')\n")
    rc, out, err = run_micropython(
        "import helper_mod\nprint('before')\nhelper_mod.explode()\nprint('after')\n",
        files=[helper],
    )
    assert rc == 1
    assert out.splitlines() == ["before"]
    assert "Traceback (most recent call last):" in err
    assert '/app/helper_mod.py", line 2, in explode' in err
    assert err.rstrip().splitlines()[-1] == "ValueError: boom 42"


def test_sys_exit_code_and_args(tmp_path):
    script = tmp_path / "exits.py"
    script.write_text("import sys\nprint(sys.argv[1:])\nsys.exit(int(sys.argv[1]))\n")
    rc, out, _ = run_micropython(script, args=["7", "x"])
    assert rc == 7
    assert out.strip() == "['7', 'x']"
    rc, _, _ = run_micropython("import sys\nsys.exit()\n")
    assert rc == 0


def test_copies_directories_and_renamed_files(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("NAME = 'pkg'\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "leaf.py").write_text("VALUE = 6 * 7\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    data = tmp_path / "d.json"
    data.write_text(json.dumps({"answer": 42}))
    script = (
        "import os, json\n"
        "import pkg\n"
        "from pkg.sub import leaf\n"
        "print(pkg.NAME, leaf.VALUE)\n"
        "print(sorted(os.listdir('pkg')))\n"
        "with open('data/in.json') as f:\n"
        "    print(json.load(f)['answer'])\n"
    )
    rc, out, err = run_micropython(script, files=[pkg, (data, "data/in.json")])
    assert rc == 0, err
    assert out.splitlines() == ["pkg 42", "['__init__.py', 'sub']", "42"]


def test_repo_relative_paths_resolve_from_repo_root():
    # errors.py is the protocol core's exception hierarchy; it must import under MicroPython.
    assert (REPO_ROOT / "smartmeter" / "protocol" / "errors.py").is_file()
    rc, out, err = run_micropython(
        "import smartmeter.protocol.errors as e\nprint(e.__file__)\n", files=["smartmeter"]
    )
    assert rc == 0, err
    assert out.strip() == "/app/smartmeter/protocol/errors.py"


def test_stdout_is_streamed_in_order_and_large_output_survives():
    rc, out, err = run_micropython(
        "import sys\nfor i in range(20000):\n    print(i)\nsys.stdout.write('tail')\n"
    )
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 20001
    assert lines[0] == "0" and lines[19999] == "19999" and lines[-1] == "tail"
