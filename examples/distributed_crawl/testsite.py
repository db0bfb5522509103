"""The local test site the crawler runs against: ``pages`` HTML pages linking to each other
(and to one page off the site, which the crawler must not follow), every one reachable from
``/page/0``. It counts every fetch by page and by the crawler process that made it (the
``X-Crawler`` header), so a run can be checked against what the crawlers recorded."""

from __future__ import annotations

from collections import Counter

from aiohttp import web


def links_of(page: int, pages: int) -> list[int]:
    """The pages ``page`` links to: the next one (so all are reachable) and two others."""
    out = [(page * 7 + 3) % pages, (page * page + 1) % pages]
    if page + 1 < pages:
        out.append(page + 1)
    return out


class Site:
    def __init__(self, pages: int) -> None:
        self.pages = pages
        self.hits: Counter[tuple[int, str]] = Counter()  # (page, crawler) -> fetches

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/page/{number:\\d+}", self.page)
        return app

    async def page(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        if number >= self.pages:
            raise web.HTTPNotFound()
        self.hits[number, request.headers.get("X-Crawler", "?")] += 1
        anchors = "".join(
            f'<a href="/page/{n}">page {n}</a> ' for n in links_of(number, self.pages)
        )
        body = f"<html><body><h1>page {number}</h1>{anchors}"
        body += '<a href="https://example.invalid/elsewhere">off the site</a></body></html>'
        return web.Response(text=body, content_type="text/html")
