"""Evolutionary baselines (placeholder until issue 5 lands)."""
