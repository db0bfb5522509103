"""The ``python-async-patterns`` skill: the asyncio/aiohttp reference as a bundle.

``loopwise skill build`` writes ``python-async-patterns.skill``, a reproducible zip holding
``python-async-patterns/SKILL.md`` and ``python-async-patterns/references/*.md``;
``loopwise skill check FILE`` validates one. The same from Python::

    from pathlib import Path
    from loopwise.skill import build_bundle, check_bundle

    path, problems = build_bundle(Path("dist"))
    assert check_bundle(path) == []

See the docs page ``skill.md``.
"""

from loopwise.skill._bundle import BUNDLE_FILENAME as BUNDLE_FILENAME
from loopwise.skill._bundle import SKILL_NAME as SKILL_NAME
from loopwise.skill._bundle import Problem as Problem
from loopwise.skill._bundle import build_bundle as build_bundle
from loopwise.skill._bundle import check_bundle as check_bundle
from loopwise.skill._bundle import check_files as check_files
from loopwise.skill._bundle import default_source as default_source
from loopwise.skill._bundle import pack as pack
from loopwise.skill._bundle import read_bundle as read_bundle
from loopwise.skill._bundle import read_sources as read_sources
from loopwise.skill._bundle import strip_test_markers as strip_test_markers

__all__ = [
    "BUNDLE_FILENAME",
    "SKILL_NAME",
    "Problem",
    "build_bundle",
    "check_bundle",
    "check_files",
    "default_source",
    "pack",
    "read_bundle",
    "read_sources",
    "strip_test_markers",
]
