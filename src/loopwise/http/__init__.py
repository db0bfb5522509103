"""HTTP tools for aiohttp: the server kit lives in :mod:`loopwise.http.server`."""
