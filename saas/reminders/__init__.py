"""Reminders: the day-before booking reminder and recurring rules (vaccination, check-up, recall)."""
