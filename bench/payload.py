"""The delivery the bench sends: a real ``issues.opened`` payload, grown to about 18 KB.

GitHub sends compact JSON (UTF-8, no spaces). The fixture is ~11.5 KB compact; its issue has
no body, so the body is filled with a realistic markdown bug report (headings, a code block,
a traceback, a log excerpt, a checklist, a few non-ASCII characters) until the whole delivery
reaches the target size. An ``installation`` object is added, as GitHub does for app webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "payloads" / "issues.opened.json"
TARGET_BYTES = 18 * 1024

_REPORT_HEAD = """\
### Describe the bug

Since upgrading to **v2.4.0** the nightly export job fails about one run in three with a \
timeout while it uploads the archive. Nothing changed on our side except the version bump \
(see the diff in #1287). Rolling back to `v2.3.9` makes the failures go away.

### To reproduce

1. Configure the exporter with `upload.chunk_size: 8MiB` and `retries: 3`
2. Run `hello-world export --since 2024-01-01 --format ndjson --out s3://bucket/exports/`
3. Wait for the upload step — it stalls at ~92 % and then fails

```yaml
exporter:
  format: ndjson
  compression: zstd
  upload:
    chunk_size: 8MiB
    retries: 3
    timeout: 30s
```

### Expected behaviour

The upload finishes (or retries) within the configured timeout, as it did in 2.3.x.

### Actual behaviour

```text
Traceback (most recent call last):
  File "/usr/lib/python3.12/site-packages/hello_world/export/upload.py", line 214, in put_chunk
    response = await self._session.put(url, data=chunk, timeout=self._timeout)
  File "/usr/lib/python3.12/site-packages/aiohttp/client.py", line 605, in _request
    await resp.start(conn)
asyncio.exceptions.TimeoutError: upload of chunk 37/40 timed out after 30.0 s
```

<details>
<summary>Full log of a failing run</summary>

```text
"""

_REPORT_TAIL = """\
```

</details>

### Environment

| | |
| --- | --- |
| OS | Ubuntu 22.04.4 LTS (kernel 6.5.0-41) |
| Python | 3.12.3 |
| hello-world | 2.4.0 (also 2.4.1rc1) |
| Storage | S3-compatible (MinIO RELEASE.2024-05-10) |

### Checklist

- [x] I searched the existing issues → nothing matching
- [x] I can reproduce it with the latest release
- [ ] I would like to work on a fix

Thanks a lot for the great tool! 🙏 — Codertocat
"""

_LOG_LINE = (
    "2024-05-{day:02d}T03:{minute:02d}:{second:02d}.{ms:03d}Z INFO  export.upload: chunk "
    "{chunk}/40 sent ({size} bytes, {rate:.1f} MiB/s) request_id=req-{rid:08x}\n"
)


def _issue_body(log_lines: int) -> str:
    lines = [
        _LOG_LINE.format(
            day=1 + i % 28,
            minute=i % 60,
            second=(7 * i) % 60,
            ms=(37 * i) % 1000,
            chunk=1 + i % 40,
            size=8_388_608 - 977 * i,
            rate=11.5 + (i % 13) / 3,
            rid=0x5EED0000 + 7919 * i,
        )
        for i in range(log_lines)
    ]
    return _REPORT_HEAD + "".join(lines) + _REPORT_TAIL


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def build_payload(installation_id: int, target_bytes: int = TARGET_BYTES) -> bytes:
    """The compact JSON body: the fixture, an installation, and a body grown to the target."""
    payload: dict[str, Any] = json.loads(FIXTURE.read_bytes())
    payload["installation"] = {
        "id": installation_id,
        "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ==",
    }
    log_lines = 0
    while True:
        payload["issue"]["body"] = _issue_body(log_lines)
        encoded = _encode(payload)
        if len(encoded) >= target_bytes:
            return encoded
        log_lines += 1


def sign(body: bytes, secret: str) -> str:
    """``X-Hub-Signature-256`` for ``body``: ``sha256=`` and the HMAC-SHA256 in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def repository_of(body: bytes) -> str:
    """``owner/name`` of the payload's repository (the fake must know it)."""
    full_name = json.loads(body)["repository"]["full_name"]
    assert isinstance(full_name, str)
    return full_name


if __name__ == "__main__":
    built = build_payload(1)
    print(f"{len(built)} bytes; issue body {len(json.loads(built)['issue']['body'])} chars")
