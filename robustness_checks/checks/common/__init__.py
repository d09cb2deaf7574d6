"""Shared helpers of the check types: bounds and results, attack blocks, uncertainty scores."""
