"""The public namespaces export exactly their public names, sorted, each one importable."""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = [
    "loopwise",
    "loopwise.doctor",
    "loopwise.http",
    "loopwise.http.server",
    "loopwise.lint",
    "loopwise.patterns",
    "loopwise.redis",
    "loopwise.skill",
]


def _isort_style(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then everything else."""
    if name.isupper():
        return 0, name
    return (1 if name[0].isupper() else 2), name


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_unique(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_style)
    assert len(exported) == len(set(exported))


@pytest.mark.parametrize("name", PACKAGES)
def test_exported_names_are_exactly_the_public_ones(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        attribute
        for attribute, value in vars(module).items()
        if not attribute.startswith("_")
        and not isinstance(value, types.ModuleType)
        and attribute not in {"annotations"}
    }
    assert public == set(module.__all__) - {"__version__"}


@pytest.mark.parametrize("name", PACKAGES)
def test_every_export_resolves(name: str) -> None:
    module = importlib.import_module(name)
    for attribute in module.__all__:
        assert getattr(module, attribute) is not None


def test_errors_share_one_root() -> None:
    import loopwise
    from loopwise import _exceptions

    for attribute in _exceptions.__all__:
        error = getattr(_exceptions, attribute)
        assert issubclass(error, loopwise.LoopwiseError)
        assert attribute in _exceptions.__doc__, f"{attribute} missing from the drawn tree"
