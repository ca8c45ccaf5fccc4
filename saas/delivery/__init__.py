"""Deliveries: broadcasts, segments, scheduled sends, urgent notices and single pushes on RQ."""
