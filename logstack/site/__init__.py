"""The site directory: its inventory, topology, secrets, alert destinations, host facts and archive."""
