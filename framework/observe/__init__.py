"""Seeing what the bot does: logs (pretty or JSON lines) with fields bound to a delivery."""
