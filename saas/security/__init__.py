"""Secure response headers, cookie settings and encryption key rotation."""
