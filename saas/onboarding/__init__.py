"""Onboarding a clinic in the portal: the agency's wizard, the clinic profile page and the LINE plan."""
