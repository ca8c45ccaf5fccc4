"""What each friend received: one compact row per recipient per send (see models.py)."""
