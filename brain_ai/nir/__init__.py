"""NIR import and export (being built)."""
