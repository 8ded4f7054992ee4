"""Journal lines to security events: grouping, typing, exactly-once runs and their state, output."""
