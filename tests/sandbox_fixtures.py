"""Fixtures that run the LINE sandbox over real HTTP (owned by the sandbox capability)."""
