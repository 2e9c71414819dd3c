"""Packaging (pyproject.toml) and the Hugging Face Space front matter of README.md."""
import fnmatch
import importlib
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file: comments (whole-line or trailing) and blanks dropped."""
    lines = []
    for line in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            assert not line.startswith("-"), f"{path.name}: option line {line!r} has no pyproject equivalent"
            lines.append(line)
    return lines


def normalized(requirements: list[str]) -> dict[str, tuple]:
    """name -> (extras, specifiers, marker), canonical; duplicates are an error."""
    out = {}
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name not in out, f"{req.name} listed twice"
        out[name] = (tuple(sorted(req.extras)), frozenset(req.specifier), str(req.marker or ""))
    return out


def test_normalization_sees_a_different_pin():
    assert normalized(["Pillow >= 10.0, <13"]) == normalized(["pillow<13,>=10.0"])
    assert normalized(["torch==2.13.0"]) != normalized(["torch>=2.13.0"])
    assert normalized(["gradio_client"]) == normalized(["gradio-client"])
    assert requirement_lines(ROOT / "requirements.txt")  # the file has requirements at all


def test_dependencies_are_those_of_requirements_txt():
    deps = pyproject()["project"]["dependencies"]
    assert normalized(deps) == normalized(requirement_lines(ROOT / "requirements.txt"))
    # the torch pin is what keeps pip from pulling another (CUDA) build
    torch = normalized(deps)["torch"][1]
    assert len(torch) == 1 and next(iter(torch)).operator == "=="


@pytest.mark.parametrize("extra", ["test", "dev"])
def test_test_extra_is_requirements_dev_txt(extra):
    extras = pyproject()["project"]["optional-dependencies"]
    assert normalized(extras[extra]) == normalized(requirement_lines(ROOT / "requirements-dev.txt"))


def test_console_script_is_the_main_of_python_m_hiif(capsys):
    scripts = pyproject()["project"]["scripts"]
    assert set(scripts) == {"hiif"}
    module_name, _, attr = scripts["hiif"].partition(":")
    main = getattr(importlib.import_module(module_name), attr)
    assert callable(main)
    # python -m hiif runs hiif/__main__.py, which calls cli.main: the same function
    assert "from .cli import main" in (ROOT / "hiif" / "__main__.py").read_text()
    assert main is importlib.import_module("hiif.cli").main
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "upscale" in capsys.readouterr().out


def _repo_packages() -> set[str]:
    return {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "hiif").rglob("__init__.py")
            if "__pycache__" not in p.parts}


def test_package_list_covers_every_subpackage():
    find = pyproject()["tool"]["setuptools"]["packages"]["find"]
    include, exclude = find.get("include", ["*"]), find.get("exclude", [])
    packages = _repo_packages()
    assert {"hiif", "hiif.models", "hiif.models.encoders", "hiif.models.decoders", "hiif.data"} <= packages

    def selected(name):
        return (any(fnmatch.fnmatchcase(name, pat) for pat in include)
                and not any(fnmatch.fnmatchcase(name, pat) for pat in exclude))

    assert {p for p in packages if not selected(p)} == set()
    assert not selected("tests") and not selected("benchmarks")  # only the library is installed
    setuptools = pytest.importorskip("setuptools")
    found = set(setuptools.find_packages(where=str(ROOT), include=include, exclude=exclude))
    assert found == packages


def test_version_comes_from_the_package():
    project = pyproject()
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "hiif.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", importlib.import_module("hiif").__version__)


# --------------------------------------------------------------------------------------------
# Hugging Face Space configuration: the YAML block at the very top of README.md

def space_config() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must start with the Space's front matter"
    block, sep, _ = text[4:].partition("\n---\n")
    assert sep, "front matter is not closed by a --- line"
    config = yaml.safe_load(block)
    assert isinstance(config, dict)
    return config


def gradio_pin() -> str:
    spec = normalized(requirement_lines(ROOT / "requirements.txt"))["gradio"][1]
    (only,) = spec
    assert only.operator == "=="
    return only.version


def test_space_front_matter():
    config = space_config()
    assert config["sdk"] == "gradio"
    assert config["sdk_version"] == gradio_pin()  # a string, not a YAML number
    assert (ROOT / config["app_file"]).is_file()
    assert config["pinned"] is False
    assert isinstance(config["title"], str) and config["title"]
    assert isinstance(config["emoji"], str) and config["emoji"]
    colours = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert config["colorFrom"] in colours and config["colorTo"] in colours
    assert isinstance(config["short_description"], str) and 0 < len(config["short_description"]) <= 60
    # a licence is claimed only if the project has one
    has_licence = any((ROOT / n).is_file() for n in ("LICENSE", "LICENSE.md", "LICENSE.txt", "COPYING"))
    assert ("license" in config) == has_licence


def test_space_python_version_is_one_the_package_supports():
    version = space_config()["python_version"]
    assert isinstance(version, str) and re.fullmatch(r"3\.\d+", version), version  # "3.10", not 3.1
    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    assert requires.contains(f"{version}.0")


def test_the_documents_link_only_to_files_that_exist():
    """Every relative link and picture of the README, the model card and the benchmark notes
    names a file of the repository (a renamed script or figure breaks no page)."""
    documents = ["README.md", "weights/MODELS.md", "benchmarks/README.md", "examples/README.md"]
    links = 0
    for name in documents:
        page = ROOT / name
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # web addresses and anchors
            links += 1
            assert (page.parent / target.split("#")[0]).exists(), f"{name} links to missing {target}"
    assert links >= 6
