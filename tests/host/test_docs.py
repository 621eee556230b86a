"""The README stays true: every setting documented, the pictures it shows exist."""

import re

from _support import REPO_ROOT

from smartmeter.config import SCHEMA, parse_toml


def test_every_setting_is_in_the_example_and_the_readme():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    example = (REPO_ROOT / "settings.toml.example").read_text(encoding="utf-8")
    values, problems = parse_toml(example)
    assert problems == []
    for name in SCHEMA:
        assert name in values, name
        assert "`%s`" % name in readme, name
    # and nothing documented that the firmware does not read (CircuitPython's own keys aside)
    for name in values:
        assert name in SCHEMA or name.startswith("CIRCUITPY_"), name


def test_readme_pictures_and_links_exist():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)\)", readme)
    assert any(t.endswith("web.png") for t in targets)
    assert sum(t.startswith("docs/screens/") for t in targets) >= 12
    for target in targets:
        if "://" not in target:
            assert (REPO_ROOT / target).exists(), target
    assert "make sim" in readme and "make test" in readme


def _capture_row(frame):
    """The README row ("Does it read my meter?") a capture of tests/vectors belongs to."""
    op = frame.get("operator", "")
    meter = frame.get("meter", "")
    if "not Austrian" in op:
        return None
    if "AMIS" in meter:
        return "Netz Oberösterreich"
    if "T210-D-r" in meter:
        return "Energienetze Steiermark | Sagemcom T210-D-**r**"
    if op.startswith("Stadtwerke Klagenfurt"):
        return "Stadtwerke Klagenfurt"
    if frame.get("transport") == "hdlc-gbt" or "Steiermark" in op:
        return "Energienetze Steiermark | Landis+Gyr E450"
    if op.startswith("Wiener Netze") or "Wiener-Netze-style" in op:
        return "Wiener Netze"
    if op.startswith("Wels"):
        return "Netz Wels"
    if op.startswith(("KNG", "Kärnten Netz")):
        return "Kärnten Netz"
    if op.startswith("Netz Burgenland"):
        return "Netz Burgenland"
    if op.startswith("Netz NÖ"):
        return "Netz Niederösterreich"
    if op.startswith("TINETZ"):
        return "TINETZ"
    raise AssertionError("capture %s has no README row" % frame.get("id"))


def test_readme_capture_counts_match_the_test_vectors():
    import json

    counts = {}
    for path in sorted((REPO_ROOT / "tests" / "vectors").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for frame in data["frames"]:
            row = _capture_row(frame)
            if row is not None:
                n, synthetic = counts.get(row, (0, 0))
                counts[row] = (n + 1, synthetic + bool(frame.get("synthetic")))
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Does it read my meter?")[1].split("\n### ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(counts) >= 10
    for row, (n, synthetic) in counts.items():
        found = [line for line in rows if line.startswith("| " + row)]
        assert len(found) == 1, row
        last = found[0].rstrip(" |").rsplit("|", 1)[1].strip()
        assert last.split()[0] == str(n), (row, n, last)
        if synthetic:
            assert "%d synthetic" % synthetic in last or "1 of them synthetic" in last, (row, last)
        else:
            assert "synthetic" not in last, (row, last)
