"""Adapters between the core logic and AWS / Stripe. Each is small and injected, so tests can use fakes."""
