"""What the rules reason about, read once from the declared resources: routers, matchers, merged policies."""
