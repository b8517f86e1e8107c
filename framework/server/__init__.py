"""Serving the bot: uvicorn that drains on the first stop signal, health and readiness."""
