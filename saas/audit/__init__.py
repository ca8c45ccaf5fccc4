"""Append-only audit log: who did what, when, at which clinic, from where."""
