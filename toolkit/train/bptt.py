"""Gradient trainers (placeholder until issue 4 lands)."""
