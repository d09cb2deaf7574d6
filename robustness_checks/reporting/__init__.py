"""Report writers: results JSON, JUnit properties, terminal summary."""
