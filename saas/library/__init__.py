"""Shared libraries: FAQ sets and message templates inherited platform → agency → organization → clinic."""
