"""Data: sources, splits, preprocessing ops and the fingerprint cache."""
