"""The lean request path: a REST request sent straight to the pool's aiohttp session.

httpx's ``AsyncClient.request`` wraps each request in layers (building and merging, the auth
and redirect flows, cookies, event hooks) that cost more CPU than the network call beneath
them: in a profile of the labeler under a burst, 24.6% of the event loop went to those layers
and 10.9% to the transport. A pool made by :func:`~framework.client.rest.new_http_client`
follows no redirect, keeps no cookie and has no hook, so for what the REST client sends most (a
path below the base URL, with ``json``, ``content``, ``params`` or ``headers``) this module
sends the same request to the aiohttp session the pool's transport holds, with the same
timeouts and the same error mapping, and answers an ``httpx.Response`` as httpx would.
:meth:`LeanPool.prepare` returns None for anything else (another keyword, an absolute URL, a
character httpx would quote), and the client sends that through httpx.

>>> pool = LeanPool.of(http)  # doctest: +SKIP
>>> request = pool.prepare("POST", "/repos/o/r/issues/1/labels", {"json": {"labels": ["bug"]}})
...  # doctest: +SKIP
>>> response = await request.send("token ghs_...")  # doctest: +SKIP
"""

from __future__ import annotations

import json as json_module
import re
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from aiohttp import ClientSession, ClientTimeout
    from httpx_aiohttp import AiohttpTransport

LEAN_KEYWORDS = frozenset({"json", "content", "params", "headers"})
"""The keyword arguments the lean path sends itself; any other goes through httpx."""

# A path httpx sends as written: printable ASCII but for the characters it would quote
# (" # < > ` { }), one leading slash (httpx reads "//host" as an authority), no dot segment
# (httpx removes them).
_PLAIN_PATH = re.compile(r"/(?!/)(?!.*/\.\.?(?:[/?]|\Z))[!$-;=?-_a-z|~]*\Z")


def join_url(base: str, path: str, params: Any = None) -> str | None:
    """``path`` (with ``params``) below ``base`` (which ends with ``/``) as httpx joins them,
    or None where httpx would rewrite it (quote a character, drop a query for ``params``).

    >>> join_url("https://api.github.com/", "/repos/o/r/issues/1/labels")
    'https://api.github.com/repos/o/r/issues/1/labels'
    >>> join_url("https://ghe.example/api/v3/", "/repos/o/r", {"per_page": 100, "a": [1, 2]})
    'https://ghe.example/api/v3/repos/o/r?per_page=100&a=1&a=2'
    >>> join_url("https://api.github.com/", "/search/issues", {"q": "is:open é"})
    'https://api.github.com/search/issues?q=is%3Aopen+%C3%A9'
    >>> join_url("https://api.github.com/", "/repos/o/r?page=2", {})  # httpx drops ?page=2
    >>> join_url("https://api.github.com/", "/labels/good first issue")  # httpx quotes it
    >>> join_url("https://api.github.com/", "/repos/o/r/../s")  # httpx removes the dot segment
    >>> join_url("https://api.github.com/", "/repos/o/r/contents/.github/bot.yml")
    'https://api.github.com/repos/o/r/contents/.github/bot.yml'
    >>> join_url("https://api.github.com/", "https://uploads.github.com/x")  # another host
    """
    if params is not None:
        if "?" in path:
            return None
        query = str(httpx.QueryParams(params))
        path = f"{path}?{query}" if query else path
    if _PLAIN_PATH.match(path) is None:
        return None
    return base + path[1:]


def merge_headers(defaults: Mapping[str, str], extra: object) -> dict[str, str] | None:
    """The pool's headers (lower-case names) updated with a request's, names compared without
    case, as httpx merges them; None for headers that are not a mapping of text.

    >>> merge_headers({"accept": "*/*", "user-agent": "bot"}, {"Accept": "application/json"})
    {'accept': 'application/json', 'user-agent': 'bot'}
    >>> merge_headers({"accept": "*/*"}, {"X-Raw": b"bytes"}), merge_headers({}, [("A", "1")])
    (None, None)
    """
    if extra is None:
        return dict(defaults)
    if not isinstance(extra, Mapping):
        return None
    merged = dict(defaults)
    for name, value in extra.items():
        if not isinstance(name, str) or not isinstance(value, str):
            return None
        merged[name.lower()] = value
    return merged


def encode_json(value: Any) -> bytes:
    """``json=`` as httpx encodes it: compact, UTF-8 as it is (not ``\\u`` escapes, so a
    Chinese comment is half the bytes), and NaN refused before anything is sent.

    >>> encode_json({"body": "好", "labels": ["bug"]})
    b'{"body":"\\xe5\\xa5\\xbd","labels":["bug"]}'
    >>> encode_json(float("nan"))
    Traceback (most recent call last):
    ValueError: Out of range float values are not JSON compliant
    """
    text = json_module.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode()


class LeanRequest:
    """A request built once; :meth:`send` sends it with an ``Authorization`` header (again,
    with another, after a 401)."""

    __slots__ = ("content", "headers", "method", "pool", "url")

    def __init__(
        self, pool: LeanPool, method: str, url: str, headers: dict[str, str], content: bytes | None
    ) -> None:
        self.pool = pool
        self.method = method
        self.url = url
        self.headers = headers
        self.content = content

    async def send(self, authorization: str) -> httpx.Response:
        """Send the request with this ``Authorization`` header; the answer, read to the end."""
        headers = {**self.headers, "authorization": authorization}
        return await self.pool.send(self.method, self.url, headers, self.content)


_POOLS: weakref.WeakKeyDictionary[httpx.AsyncClient, LeanPool] = weakref.WeakKeyDictionary()


class LeanPool:
    """The lean path over one httpx pool whose transport is httpx_aiohttp's.

    Made by :meth:`enable` when the pool is made (:func:`~framework.client.rest.new_http_client`);
    :meth:`of` finds it again. The pool's base URL, default headers and timeouts are read
    then: the client never changes them afterwards.
    """

    def __init__(self, http: httpx.AsyncClient, transport: AiohttpTransport) -> None:
        # aiohttp is imported here, with the pool, not when the client module is imported.
        import aiohttp
        from httpx_aiohttp.transport import map_aiohttp_exceptions

        self.http = http
        self.base = str(http.base_url).rstrip("/") + "/"
        self.headers = dict(http.headers.items())
        timeout = http.timeout
        # What AiohttpTransport.handle_async_request passes for httpx's timeouts.
        self.timeout: ClientTimeout = aiohttp.ClientTimeout(
            sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
        )
        self.transport = transport
        self._session_class = aiohttp.ClientSession
        self._errors = map_aiohttp_exceptions

    @classmethod
    def enable(cls, http: httpx.AsyncClient) -> None:
        """Send ``http``'s plain requests the lean way, if its transport allows it."""
        from httpx_aiohttp import AiohttpTransport

        # The transport httpx would choose for the base URL: not a proxy's (from the
        # environment), which the lean path does not speak.
        transport = http._transport_for_url(http.base_url)
        if (
            isinstance(transport, AiohttpTransport)
            and transport is http._transport
            and transport.proxy is None
            and not http.follow_redirects
            and not any(http.event_hooks.values())
        ):
            _POOLS[http] = cls(http, transport)

    @classmethod
    def of(cls, http: httpx.AsyncClient) -> LeanPool | None:
        """The lean path of ``http``, or None (not enabled, or the pool is closed)."""
        pool = _POOLS.get(http)
        return None if pool is None or http.is_closed else pool

    def prepare(self, method: str, path: str, kwargs: Mapping[str, Any]) -> LeanRequest | None:
        """``method path`` with httpx's keyword arguments, built for :meth:`LeanRequest.send`;
        None when only httpx can send it."""
        if not kwargs.keys() <= LEAN_KEYWORDS:
            return None
        url = join_url(self.base, path, kwargs.get("params"))
        if url is None:
            return None
        headers = merge_headers(self.headers, kwargs.get("headers"))
        if headers is None:
            return None
        json, content = kwargs.get("json"), kwargs.get("content")
        if content is not None:  # text or bytes as given; a stream is httpx's to send
            if json is not None or not isinstance(content, str | bytes):
                return None
            content = content.encode() if isinstance(content, str) else content
        elif json is not None:  # as httpx: its content type, unless the headers name one
            headers.setdefault("content-type", "application/json")
            content = encode_json(json)
        return LeanRequest(self, method, url, headers, content or None)

    def _session(self) -> ClientSession:
        session = self.transport.client
        if not isinstance(session, self._session_class):
            # Made on first use, as the transport makes it, and shared with it.
            session = self.transport.client = self.transport.get_client()
        return session

    async def send(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None
    ) -> httpx.Response:
        """Send one request; its answer, read. Network errors raise httpx's (as the
        transport maps them: ``ConnectError``, ``ConnectTimeout``, ``ReadError``...)."""
        started = time.perf_counter()
        with self._errors():
            async with self._session().request(
                method,
                url,
                headers=headers,
                data=content,
                allow_redirects=False,
                auto_decompress=False,  # httpx decodes, as it does behind the transport
                compress=False,
                timeout=self.timeout,
            ) as answer:
                body = await answer.read()
        extensions = {"http_version": b"HTTP/1.1"}
        if answer.reason:
            extensions["reason_phrase"] = answer.reason.encode()
        response = LeanResponse.read_from(answer.status, answer.raw_headers, body, extensions)
        response.sent = (method, url, headers, content)
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        if response.has_redirect_location:  # not followed; where it points, as httpx says
            response.next_request = self.http._build_redirect_request(response.request, response)
        return response


class LeanResponse(httpx.Response):
    """An ``httpx.Response`` whose ``request`` is built when first read: most callers never
    read it, and building one (parsing its URL) costs about 20 µs, a seventh of the lean
    path's CPU per request."""

    sent: tuple[str, str, dict[str, str], bytes | None]

    @classmethod
    def read_from(
        cls,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        extensions: dict[str, Any],
    ) -> LeanResponse:
        """The response, read: as ``Response(stream=...)`` then ``read()``, which passes the
        body through httpx's decoder. A gzip or other encoded body still does; a plain one
        (nearly every API answer) is the content as it is, without the decoder's ~5 µs."""
        response = cls(
            status, headers=headers, stream=httpx.ByteStream(body), extensions=extensions
        )
        if "content-encoding" in response.headers:
            response.read()
        else:  # what read() leaves behind, for a body its decoder would return unchanged
            response._content = body
            response._num_bytes_downloaded = len(body)
            response.is_stream_consumed = response.is_closed = True
        return response

    @property
    def request(self) -> httpx.Request:
        """The request this answers."""
        if self._request is None:
            method, url, headers, content = self.sent
            self._request = httpx.Request(method, url, headers=headers, content=content)
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value
