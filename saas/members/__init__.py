"""Staff of a clinic: the members list, invitations, role changes and removals."""
