"""A local stand-in for the LINE platform (Messaging API, webhooks, rich menus, statistics)
speaking LINE's wire format over real HTTP. Development, tests and demo only; never imported
by product code. See README.md."""

from __future__ import annotations

from .app import create_sandbox_app

__all__ = ["create_sandbox_app"]
