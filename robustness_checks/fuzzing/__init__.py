"""Hypothesis strategies of input perturbations and the search that shrinks failures."""
