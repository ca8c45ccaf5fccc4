"""Bookings (予約): external link or native booking with LINE Login, slots from the schedule."""
