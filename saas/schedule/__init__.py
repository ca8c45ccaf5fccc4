"""Clinic schedules: weekly hours in blocks, public holidays, closures (休診) and 代診."""
