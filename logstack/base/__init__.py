"""Foundations every stage shares: errors and exit codes, time, safe files, text, shell, validation, YAML."""
