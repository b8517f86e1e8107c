"""Say what a network failure really was, in a few words (a pure function over its text).

httpx's transports name failures by class (and the aiohttp transport calls a failed DNS lookup
a ``ConnectTimeout``); the operator needs the cause: the name did not resolve, the connection
was refused, it timed out.

>>> network_failure("ConnectTimeout",
...     "Cannot connect to host api.github.com:443 ssl:default [Name or service not known]")
'cannot resolve api.github.com (DNS: Name or service not known)'
>>> network_failure("ConnectError", "[Errno 111] Connection refused")
'connection refused'
"""

from __future__ import annotations

import re

_DNS = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "no address associated",
    "getaddrinfo failed",
    "could not contact dns",
    "name does not resolve",
)
_TIMEOUT_STAGES = {
    "ConnectTimeout": "connecting",
    "PoolTimeout": "for a free connection",
    "WriteTimeout": "sending the request",
}
_HOST = re.compile(r"host ([^\s:\]]+|\[[^\]]+\]):(\d+)")
_REASON = re.compile(r"\[(?:Errno -?\d+\] )?([^\[\]]+)\]?\s*$")


def network_failure(kind: str, message: str) -> str:
    """A short description of a transport error, from its class name and message.

    >>> network_failure("ReadTimeout", "")
    'timed out waiting for the answer (ReadTimeout)'
    """
    lowered = message.lower()
    match = _HOST.search(message)
    where = f" {match[1]}" if match else ""
    if any(marker in lowered for marker in _DNS):
        reason = _REASON.search(message)
        detail = reason[1].strip() if reason else message
        return f"cannot resolve{where or ' the host name'} (DNS: {detail})"
    if any(m in lowered for m in ("refused", "connect call failed", "connection attempts failed")):
        return f"connection refused{' by' + where if where else ''}"
    if "reset by peer" in lowered:
        return f"connection reset{' by' + where if where else ''}"
    if "certificate" in lowered or "[ssl" in lowered or "tls" in lowered:
        return f"TLS failed{' with' + where if where else ''} ({message})"
    if "timeout" in kind.lower() or "timed out" in lowered:
        stage = _TIMEOUT_STAGES.get(kind, "waiting for the answer")
        to = f" to{where}" if where and kind == "ConnectTimeout" else ""
        return f"timed out {stage}{to} ({kind})"
    return f"{kind}: {message}" if message else kind


def describe_network_error(exc: BaseException) -> str:
    """:func:`network_failure` for an exception, looking through to its root cause."""
    root: BaseException = exc
    for _ in range(10):  # bounded: a cycle of causes is not followed forever
        nxt = root.__cause__ or root.__context__
        if nxt is None:
            break
        root = nxt
    texts = [str(exc), str(root) if root is not exc else ""]
    return network_failure(type(exc).__name__, " ".join(t for t in texts if t))
