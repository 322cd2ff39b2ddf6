"""Parsing, validating and executing operations: caches, limits, cost, the fast path."""
