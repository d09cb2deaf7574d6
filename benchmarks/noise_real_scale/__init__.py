"""The real-scale noise tier: CIFAR-shaped models with Monte Carlo truths."""
