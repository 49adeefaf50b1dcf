"""Shared test fixtures. Every test talks only to 127.0.0.1."""
