"""Group-level administration outside any clinic: shared library authoring and group-wide links."""
