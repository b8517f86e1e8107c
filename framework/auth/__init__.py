"""Who the bot is to a platform: its private key, its app JWT, installation tokens (cached in
the process and, with Redis, shared by every replica)."""
