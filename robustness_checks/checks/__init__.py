"""Check types: each module defines its parameter model, its run function and its `CHECK` entry."""
