"""Data retention: how long each clinic keeps message bodies, webhook events and send bookkeeping."""
