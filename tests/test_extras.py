"""The optional-extra guard: every extra it names exists in setup.cfg and installs the module
it is named for, and a missing module is the one-line error naming that extra."""

import configparser
import functools
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.extras import EXTRA_OF, extra_of, require

SETUP_CFG = Path(__file__).parents[1] / "setup.cfg"


def extras_in_setup_cfg() -> dict[str, list[Requirement]]:
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    return {
        extra: [Requirement(line) for line in lines.splitlines() if line.strip()]
        for extra, lines in parser["options.extras_require"].items()
    }


@functools.cache
def installed_providers() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    """The installed distributions that provide a top-level module (its own name if none is
    installed: wandb)."""
    top = module.split(".")[0]
    return {canonicalize_name(name) for name in installed_providers().get(top, [top])}


def brought_by(requirement: Requirement) -> set[str]:
    """The distributions a requirement installs itself, one level deep, with its extras."""
    brought = {canonicalize_name(requirement.name)}
    try:
        requires = metadata.requires(requirement.name) or []
    except metadata.PackageNotFoundError:
        return brought
    for line in requires:
        dependency = Requirement(line)
        if dependency.marker is None or any(
            dependency.marker.evaluate({**default_environment(), "extra": extra})
            for extra in requirement.extras
        ):
            brought.add(canonicalize_name(dependency.name))
    return brought


def provides(requirement: Requirement, module: str) -> bool:
    """Whether installing `requirement` makes `module` importable: its distribution (or one
    it brings with its extras) provides the top-level package, and a subpackage that is an
    extra of that distribution (ray.tune: `ray[tune]`) is asked for."""
    providers = distributions_of(module)
    if canonicalize_name(requirement.name) in providers:
        if "." not in module:
            return True
        sub = module.split(".")[1]
        own_extras = metadata.metadata(requirement.name).get_all("Provides-Extra") or []
        return sub not in own_extras or sub in requirement.extras
    return bool(brought_by(requirement) & providers)


@pytest.mark.parametrize("module", sorted(EXTRA_OF))
def test_each_guarded_module_is_installed_by_the_extra_the_guard_names(module):
    extras = extras_in_setup_cfg()
    extra = EXTRA_OF[module]
    assert extra in extras, f"{module}: extra [{extra}] is not in setup.cfg"
    assert any(provides(r, module) for r in extras[extra]), (module, extra, extras[extra])


def test_the_test_extra_installs_every_guarded_module():
    test_extra = extras_in_setup_cfg()["test"]
    missing = [
        module
        for module in EXTRA_OF
        if module != "wandb" and not any(provides(r, module) for r in test_extra)
    ]
    assert not missing  # wandb is left out on purpose: its tracker is not tested here


def test_a_submodule_takes_the_extra_of_the_nearest_listed_package():
    assert extra_of("pyarrow.parquet") == "ray"
    assert extra_of("ray.tune.search.optuna") == "ray"
    assert extra_of("ray.serve") == "ray"
    with pytest.raises(KeyError, match="not an optional module"):
        extra_of("ray")  # which extra depends on what of Ray is used


@pytest.mark.parametrize("module", sorted(EXTRA_OF))
def test_a_missing_module_is_one_line_naming_its_extra(module, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` fails
    with pytest.raises(BertNERError) as caught:
        require(module, "this feature")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"this feature needs {module} (")
    assert message.endswith(f"pip install 'spacy-bert-ner[{EXTRA_OF[module]}]'")
