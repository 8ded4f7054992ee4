"""One thin module per command: parse arguments, call the core, print, exit."""
