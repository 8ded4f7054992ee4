"""Evidence that rows were not forged or changed: per-host record signatures and the sealed hash chain."""
