#!/usr/bin/env bash
# Development in one command: the bot, and a tunnel from a smee.io channel to it.
#
#   ./smee_dev.sh [BOT]          BOT: a file or module (default: sample_bots/labeler.py)
#
# The channel is WEBHOOK_PROXY_URL (environment, or .env in this directory); without one, a
# new channel is created at $SMEE_URL/new (default https://smee.io) and saved to .env, the
# other keys kept. Paste the URL printed as your GitHub App's webhook URL. Ctrl-C stops both
# processes; so does either of them dying. PYTHON picks the interpreter (default: .venv's).
set -euo pipefail

bot="${1:-sample_bots/labeler.py}"
smee="${SMEE_URL:-https://smee.io}"
smee="${smee%/}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi

say() { echo "smee_dev.sh: $*" >&2; }

# The last value of KEY in .env, without surrounding quotes ("" if none).
env_value() {
    [ -f .env ] || return 0
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" .env | tail -n 1 |
        sed -e 's/[[:space:]]*$//' -e "s/^[\"']//" -e "s/[\"']\$//"
}

# Set WEBHOOK_PROXY_URL in .env: replace its line, or add one; other lines stay as they are.
save_url() {
    if [ -f .env ] && grep -q '^[[:space:]]*WEBHOOK_PROXY_URL[[:space:]]*=' .env; then
        local merged
        merged="$(sed "s|^[[:space:]]*WEBHOOK_PROXY_URL[[:space:]]*=.*|WEBHOOK_PROXY_URL=$1|" .env)"
        printf '%s\n' "$merged" >.env # rewritten in place: its mode and owner stay
    else
        if [ -s .env ] && [ -n "$(tail -c 1 .env)" ]; then echo >>.env; fi
        (umask 077 && echo "WEBHOOK_PROXY_URL=$1" >>.env)
    fi
}

url="${WEBHOOK_PROXY_URL:-$(env_value WEBHOOK_PROXY_URL)}"
if [ -z "$url" ]; then
    if ! url="$(curl -fsSL --max-time 30 -H 'Accept: text/html' -o /dev/null \
        -w '%{url_effective}' "$smee/new")" || [ "$url" = "$smee/new" ]; then
        say "could not create a channel at $smee/new (is it reachable?);"
        say "create one in a browser and set WEBHOOK_PROXY_URL in .env"
        exit 1
    fi
    if save_url "$url" 2>/dev/null; then
        say "created the channel $url and saved it to .env (WEBHOOK_PROXY_URL)"
    else
        say "created the channel $url, but could not write .env: add WEBHOOK_PROXY_URL=$url to it"
    fi
fi
export WEBHOOK_PROXY_URL="$url"
# Only the tunnel talks to the bot: listen on loopback unless told otherwise.
if [ -z "${HOST:-}" ] && [ -z "$(env_value HOST)" ]; then export HOST=127.0.0.1; fi

"$python" -m framework run "$bot" &
bot_pid=$!
"$python" -m framework tunnel "$url" &
tunnel_pid=$!

stop() {
    trap - INT TERM
    kill -TERM "$bot_pid" "$tunnel_pid" 2>/dev/null || true
    wait "$bot_pid" 2>/dev/null || true
    wait "$tunnel_pid" 2>/dev/null || true
}
trap 'say "stopping"; stop; exit 0' INT TERM

say "webhook URL for your GitHub App: $url"
say "bot $bot (pid $bot_pid), tunnel (pid $tunnel_pid); Ctrl-C stops both"

status=0
wait -n "$bot_pid" "$tunnel_pid" || status=$?
if kill -0 "$bot_pid" 2>/dev/null; then who="the tunnel"; else who="the bot"; fi
say "$who stopped (exit status $status); stopping the other"
stop
exit "$status"
