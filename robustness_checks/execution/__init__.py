"""How checks run: the context, batching, random streams, devices across processes, diagnostics."""
