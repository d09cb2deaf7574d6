"""Uncertainty from predictive samples (softmax, MC dropout, ensembles) and OOD scores."""
