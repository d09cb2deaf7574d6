"""Metric definitions as vectorised numpy functions (leading axes are independent batches)."""
