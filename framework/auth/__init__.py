"""Who the bot is to a platform: its private key, its app JWT, installation tokens (cached in
the process and, with Redis, shared by every replica); and who its users are: OAuth sign-in
steps (:mod:`~framework.auth.oauth`), their tokens sealed and refreshed
(:mod:`~framework.auth.user_tokens`), and the one sealing of stored secrets
(:mod:`~framework.auth.sealing`)."""
