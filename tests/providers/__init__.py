"""Provider tests: the shared contract and each provider's own behaviour."""
