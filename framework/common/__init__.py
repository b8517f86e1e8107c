"""Small pieces used across the framework, each done one way: the backoff formula,
single-flight work, the compact JSON encoding, durations as people write them, the garbage
collector's threshold while serving."""
