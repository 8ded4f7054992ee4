"""Alerts: events the scheduled analysis reports, delivered to people and systems, each exactly once."""
