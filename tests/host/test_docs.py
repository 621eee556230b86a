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
