"""HTTP tools for aiohttp: the client here, the server kit in :mod:`loopwise.http.server`.

::

    from loopwise.http import Client

    async with Client("https://api.example.com/v1/", rate=10) as client:
        user = await client.get_json("users/42")        # retried when safe to repeat
        async with client.post("users", json=user) as response:   # POST: never retried
            print(response.status)
        await client.download("files/big.tar", "big.tar")          # atomic: no half files

See the docs page ``client.md`` for every option and guarantee.
"""

from loopwise._exceptions import ConnectError as ConnectError
from loopwise._exceptions import DecodingError as DecodingError
from loopwise._exceptions import HTTPError as HTTPError
from loopwise._exceptions import HTTPStatusError as HTTPStatusError
from loopwise._exceptions import HTTPTimeout as HTTPTimeout
from loopwise._exceptions import InvalidURL as InvalidURL
from loopwise._exceptions import PoolTimeout as PoolTimeout
from loopwise._exceptions import RetryExhausted as RetryExhausted
from loopwise._exceptions import TooManyRedirects as TooManyRedirects
from loopwise._exceptions import TransportError as TransportError
from loopwise.http._client import Client as Client
from loopwise.http._client import ClientStatistics as ClientStatistics
from loopwise.http._mock import MockRoute as MockRoute
from loopwise.http._mock import MockTransport as MockTransport
from loopwise.http._mock import RecordedRequest as RecordedRequest
from loopwise.http._options import DEFAULT_POOL_TIMEOUT as DEFAULT_POOL_TIMEOUT
from loopwise.http._options import DEFAULT_RETRY as DEFAULT_RETRY
from loopwise.http._options import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from loopwise.http._options import USE_CLIENT_DEFAULT as USE_CLIENT_DEFAULT
from loopwise.http._options import RetryOption as RetryOption
from loopwise.http._options import TimeoutOption as TimeoutOption
from loopwise.http._options import UseClientDefault as UseClientDefault
from loopwise.http._responses import RequestContext as RequestContext
from loopwise.http._responses import ResponseStream as ResponseStream
from loopwise.http._retry_policy import IDEMPOTENT_METHODS as IDEMPOTENT_METHODS
from loopwise.http._retry_policy import RETRY_STATUSES as RETRY_STATUSES
from loopwise.http._retry_policy import AttemptRecord as AttemptRecord
from loopwise.http._retry_policy import HTTPRetry as HTTPRetry
from loopwise.http._retry_policy import parse_retry_after as parse_retry_after
from loopwise.patterns._retry import GiveUpReason as GiveUpReason

__all__ = [
    "DEFAULT_POOL_TIMEOUT",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "USE_CLIENT_DEFAULT",
    "AttemptRecord",
    "Client",
    "ClientStatistics",
    "ConnectError",
    "DecodingError",
    "GiveUpReason",
    "HTTPError",
    "HTTPRetry",
    "HTTPStatusError",
    "HTTPTimeout",
    "InvalidURL",
    "MockRoute",
    "MockTransport",
    "PoolTimeout",
    "RecordedRequest",
    "RequestContext",
    "ResponseStream",
    "RetryExhausted",
    "RetryOption",
    "TimeoutOption",
    "TooManyRedirects",
    "TransportError",
    "UseClientDefault",
    "parse_retry_after",
]
