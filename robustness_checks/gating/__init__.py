"""Release gating: baselines with regression rules, and paired comparison of two models."""
