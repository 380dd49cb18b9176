"""environment.yml installs what pyproject.toml declares (it defers to it), with the same pins."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_installs_the_package_with_dev_extra_and_same_torch():
    env = (ROOT / "environment.yml").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert re.search(r'^\s*- -e "\.\[dev\]"\s*$', env, re.M), "environment.yml must pip-install -e .[dev]"
    torch_pin = next(d for d in project["dependencies"] if d.startswith("torch"))
    assert f"- {torch_pin}" in env
    python = re.search(r"^\s*- python=(\d+\.\d+)", env, re.M).group(1)
    minimum = re.match(r">=(\d+\.\d+)", project["requires-python"]).group(1)
    assert tuple(map(int, python.split("."))) >= tuple(map(int, minimum.split(".")))
    wanted = {"torch", "triton", "jupyterlab", "ipywidgets", "anywidget", "marimo", "altair", "nbval", "jupyter-book"}
    declared = {re.split(r"[<>=;\[ ]", d)[0] for d in project["dependencies"] + project["optional-dependencies"]["dev"]}
    assert wanted <= declared, f"missing from pyproject.toml: {wanted - declared}"
