"""Setting machines up: a new site, the server and receivers, logstack on the server, the store schema."""
