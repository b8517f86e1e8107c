# A bot built on this framework, as a container.
#
#   docker build -t labeler .                      # BOT defaults to sample_bots/labeler.py
#   docker run --env-file .env -p 3000:3000 -v bot-data:/data labeler
#
# BASE_IMAGE must have python3 (3.11 or later) on PATH with its venv module: the official
# slim image has both. The CA bundle for pip is an optional build secret:
#   --secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY framework ./framework
RUN --mount=type=secret,id=cacert \
    set -eu; \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    python3 -m venv /opt/bot; \
    /opt/bot/bin/pip wheel --no-deps --no-cache-dir --disable-pip-version-check --quiet \
      --wheel-dir /wheels .; \
    /opt/bot/bin/pip install --no-cache-dir --disable-pip-version-check --quiet /wheels/*.whl; \
    /opt/bot/bin/python -m pip uninstall --yes --quiet pip setuptools; \
    find /opt/bot -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
ENV PATH=/opt/bot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=3000 \
    JOURNAL_PATH=/data/deliveries.sqlite3 \
    ENVIRONMENT=production \
    BOT=sample_bots/labeler.py
COPY --from=build /opt/bot /opt/bot
WORKDIR /app
COPY sample_bots ./sample_bots
RUN groupadd --gid 10001 bot \
    && useradd --uid 10001 --gid bot --no-create-home --home-dir /app --shell /usr/sbin/nologin bot \
    && mkdir -p /data && chown bot:bot /data
USER bot
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=2)"]
# The bot: a file or a module path, as `python -m framework run` takes it. Override with
# BOT=... or with the command's argument (docker run IMAGE my_bot.py).
ENTRYPOINT ["/bin/sh", "-c", "exec python3 -m framework run \"${1:-$BOT}\"", "framework"]
CMD []
