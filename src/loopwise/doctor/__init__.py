"""The runtime doctor: see, while a program runs, where its event loop blocks and what it leaks.

Use it from the command line (``loopwise run script.py``), inside an application
(:func:`install` / :func:`watch`), or in tests (``pytest --loopwise``). It reports, each with the
user's own file and line:

- ``blocked``: the loop thread did not come back to the loop for longer than the threshold;
- ``task-leak``: a task still pending when its loop shut down;
- ``exception-not-retrieved``: a task failed and nobody looked at its exception;
- ``never-awaited``: a coroutine was created and dropped without being awaited;
- ``unclosed-resource``: an aiohttp session or connector, or a transport, never closed.
"""

from loopwise.doctor import _fork  # noqa: F401  (registers the at-fork hooks)
from loopwise.doctor._doctor import Doctor as Doctor
from loopwise.doctor._doctor import DoctorStatistics as DoctorStatistics
from loopwise.doctor._doctor import active as active
from loopwise.doctor._doctor import install as install
from loopwise.doctor._doctor import uninstall as uninstall
from loopwise.doctor._doctor import watch as watch
from loopwise.doctor._model import Event as Event
from loopwise.doctor._model import EventKind as EventKind
from loopwise.doctor._model import Frame as Frame
from loopwise.doctor._report import format_report as format_report
from loopwise.doctor._report import report_json as report_json

__all__ = [
    "Doctor",
    "DoctorStatistics",
    "Event",
    "EventKind",
    "Frame",
    "active",
    "format_report",
    "install",
    "report_json",
    "uninstall",
    "watch",
]
