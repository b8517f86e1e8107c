#!/usr/bin/env bash
# Development tunnel through smee.io: forwards GitHub's deliveries to the local bot.
#
# Not built yet: the developer-experience issue brings a smee client that keeps GitHub's
# signed bytes intact (smee.io re-parses bodies; see ../shared/REFERENCE.md) and reconnects.
# Until then, point your GitHub App's webhook URL at a tunnel of your choice that forwards
# POSTs unchanged to http://localhost:${PORT:-3000}/api/github/webhooks.
echo "smee_dev.sh: not implemented yet (comes with the developer-experience issue)." >&2
echo "Forward deliveries to http://localhost:${PORT:-3000}${WEBHOOK_PATH:-/api/github/webhooks} with any tunnel meanwhile." >&2
exit 2
