"""``loopwise check``: a static checker for asyncio and aiohttp pitfalls.

Use :func:`check` on paths or :func:`check_source` on a string; every rule is listed in
``RULES`` and documented in docs/rules/.
"""

from loopwise.lint._api import CheckResult as CheckResult
from loopwise.lint._api import check as check
from loopwise.lint._api import check_source as check_source
from loopwise.lint._finding import Finding as Finding
from loopwise.lint._rule import Rule as Rule
from loopwise.lint.rules import ALL_RULES as RULES

__all__ = ["RULES", "CheckResult", "Finding", "Rule", "check", "check_source"]
