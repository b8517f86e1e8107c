"""The container, for real: the Dockerfile built with podman, run, a delivery through it.

No image registry is reachable here, so ``.ci/container-setup`` makes a local base image
(Debian's python3 where the official image keeps it) and the podman settings this host needs;
the test runs it first (it is quick once done). The fake GitHub listens on the host's loopback
only; the container reaches it through slirp4netns's gateway to the host's loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from framework.testing import FakeGitHub
from tests.support import APP_ID, PEM, REPO, ROOT, SECRET, free_port, issue_opened, signed

pytestmark = pytest.mark.timeout(900)

IMAGE = "localhost/framework-bot:test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_LOOPBACK = "10.0.2.2"  # the host's 127.0.0.1, seen from slirp4netns
NETWORK = "slirp4netns:allow_host_loopback=true"
MAX_IMAGE_BYTES = 200_000_000


@pytest.fixture(scope="module")
def engine() -> dict[str, str]:
    """The environment podman needs here; skips only where podman cannot be had."""
    if os.environ.get("FRAMEWORK_CONTAINER_SKIP"):
        pytest.skip(os.environ["FRAMEWORK_CONTAINER_SKIP"])
    if shutil.which("podman") is None:
        pytest.skip(
            "podman is not installed: `.ci/run` installs it (apt-get install podman buildah "
            "debootstrap runc slirp4netns) and runs this test"
        )
    setup = subprocess.run(
        [str(ROOT / ".ci" / "container-setup")], capture_output=True, text=True, timeout=900
    )
    assert setup.returncode == 0, setup.stderr
    env = dict(os.environ)
    for line in setup.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    return env


def podman(
    engine: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=engine, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def image(engine: dict[str, str]) -> str:
    """The Dockerfile, built as CI builds it."""
    secret = [f"--secret=id=cacert,src={CA_BUNDLE}"] if CA_BUNDLE.exists() else []
    build = podman(
        engine, "build", "--network=host", "--format", "docker", *secret,
        "--build-arg", f"BASE_IMAGE={engine['FRAMEWORK_BASE_IMAGE']}", "-t", IMAGE, str(ROOT),
        timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    return IMAGE


class Container:
    """A detached container of the image, removed at the end."""

    def __init__(self, engine: dict[str, str], name: str, port: int) -> None:
        self.engine = engine
        self.name = name
        self.base = f"http://127.0.0.1:{port}"

    def podman(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return podman(self.engine, *args, timeout=timeout)

    def wait_healthy(self, within: float = 90) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            running = self.podman("inspect", "--format", "{{.State.Running}}", self.name)
            assert running.stdout.strip() == "true", self.logs()
            time.sleep(0.25)
        raise AssertionError("the container never answered /healthz:\n" + self.logs())

    def logs(self) -> str:
        out = self.podman("logs", self.name)
        return out.stdout + out.stderr


@pytest.fixture
def container(engine: dict[str, str], image: str, fake_url: str) -> Iterator[Container]:
    """The image running detached against the fake, with its port on the host's loopback."""
    name = f"framework-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    fake_port = fake_url.rsplit(":", 1)[1]
    started = subprocess.run(
        ["podman", "run", "--detach", "--name", name, "--network", NETWORK,
         "--health-interval=disable",  # no systemd timers here: the test runs the check itself
         "-p", f"127.0.0.1:{port}:3000",
         "-e", f"APP_ID={APP_ID}", "-e", "PRIVATE_KEY", "-e", f"WEBHOOK_SECRET={SECRET}",
         "-e", "LOG_FORMAT=json", "-e", "METRICS_TOKEN=scrape-token-c0ffee",
         "-e", f"GITHUB_API_URL=http://{HOST_LOOPBACK}:{fake_port}", image],
        env={**engine, "PRIVATE_KEY": PEM},  # passed by name: podman reads it from here
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    running = Container(engine, name, port)
    try:
        yield running
    finally:
        running.podman("rm", "--force", "--time", "0", name)


def test_the_image_serves_a_delivery_as_non_root_and_drains_on_sigterm(
    container: Container, fake: FakeGitHub
) -> None:
    c = container
    c.wait_healthy()

    body, headers = signed("issues", issue_opened(11), "d-container")
    answer = httpx.post(c.base + "/api/github/webhooks", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 30
    while not fake.issue_labels(REPO, 11) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake.issue_labels(REPO, 11) == ["needs-response"], c.logs()

    assert httpx.get(c.base + "/readyz").status_code == 200
    # Scraped through the published port, the request comes from off the container's
    # loopback: without the token it is refused.
    assert httpx.get(c.base + "/metrics").status_code == 401
    scraped = httpx.get(
        c.base + "/metrics", headers={"Authorization": "Bearer scrape-token-c0ffee"}
    )
    assert scraped.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    key = (
        "framework_deliveries_received_total",
        (("event", "issues"), ("platform", "github"), ("status", "202")),
    )
    assert samples[key] == 1

    health = c.podman("healthcheck", "run", c.name)
    assert health.returncode == 0, health.stdout + health.stderr
    config = c.podman("inspect", "--format", "{{json .Config.Healthcheck.Test}}", c.name)
    assert "/healthz" in config.stdout
    # Every process of the bot (the receiver, its handler process) runs as the bot user.
    uids = c.podman("exec", c.name, "sh", "-c", "grep -h '^Uid:' /proc/[0-9]*/status")
    assert uids.returncode == 0 and uids.stdout.strip(), uids.stderr
    assert {line.split()[1] for line in uids.stdout.splitlines()} == {"10001"}

    stopped = c.podman("stop", "--time", "30", c.name, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    code = c.podman("inspect", "--format", "{{.State.ExitCode}}", c.name).stdout.strip()
    logs = c.logs()
    assert code == "0", logs
    entries = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(
        e.get("delivery_id") == "d-container" and e.get("outcome") == "done" for e in entries
    )
    assert any("draining" in e["message"] for e in entries)
    assert PEM.splitlines()[1] not in logs and SECRET not in logs


def test_the_image_is_small(image: str, engine: dict[str, str]) -> None:
    size = int(podman(engine, "image", "inspect", "--format", "{{.Size}}", image).stdout)
    print(f"image size: {size / 1e6:.1f} MB on {engine['FRAMEWORK_BASE_IMAGE']}")
    assert size < MAX_IMAGE_BYTES


def test_without_credentials_each_missing_variable_is_one_line(
    image: str, engine: dict[str, str]
) -> None:
    out = podman(engine, "run", "--rm", "--health-interval=disable", image)
    assert out.returncode != 0
    lines = [line for line in (out.stdout + out.stderr).splitlines() if " is not set" in line]
    assert [line.split()[0] for line in lines] == ["WEBHOOK_SECRET", "APP_ID", "PRIVATE_KEY"]


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        (["-v", "{tmp}:/data:ro"], "JOURNAL_PATH /data/deliveries.sqlite3: /data is read-only"),
        (
            ["-e", "JOURNAL_PATH=/missing/deliveries.sqlite3"],
            "the directory /missing does not exist",
        ),
    ],
)
def test_an_unusable_data_directory_is_one_clear_line(
    image: str, engine: dict[str, str], tmp_path: Path, volume: list[str], expected: str
) -> None:
    env = {**engine, "PRIVATE_KEY": PEM}
    tmp_path.chmod(0o777)  # only the read-only mount stands in the way
    args = [a.replace("{tmp}", str(tmp_path)) for a in volume]
    out = subprocess.run(
        ["podman", "run", "--rm", "--health-interval=disable", *args, "-e", f"APP_ID={APP_ID}",
         "-e", "PRIVATE_KEY", "-e", f"WEBHOOK_SECRET={SECRET}", image],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    assert expected in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_compose_runs_two_replicas_on_redis_with_readiness_and_secrets_from_a_file() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    bot, redis = compose["services"]["bot"], compose["services"]["redis"]
    assert bot["deploy"]["replicas"] == 2
    assert bot["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert bot["env_file"] == ".env" and "PRIVATE_KEY" not in bot["environment"]
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy"
    assert any("/readyz" in part for part in bot["healthcheck"]["test"])
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert all(port.startswith("127.0.0.1:") for port in bot["ports"])


def test_the_dockerfile_declares_what_operators_rely_on() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.12-slim" in text
    assert text.count("FROM ${BASE_IMAGE}") == 2  # built in one stage, run in a slim other
    assert "\nUSER bot\n" in text and 'VOLUME ["/data"]' in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    for setting in (
        "HOST=0.0.0.0",
        "PORT=3000",
        "PYTHONUNBUFFERED=1",
        "BOT=",
        "ENVIRONMENT=production",
    ):
        assert setting in text
