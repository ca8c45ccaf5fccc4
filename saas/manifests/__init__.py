"""Declarative tenant manifests (tenants/*.yaml): apply idempotently, export back."""
