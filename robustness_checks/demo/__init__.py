"""Bundled offline demo: a small digits CNN, its trained weights and the digits data."""
