"""Held-out models and Monte Carlo truths for validating the noise estimators (issue 17)."""
