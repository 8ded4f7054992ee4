"""logstack: provision and run a central login-audit log stack for Linux fleets."""

__version__ = "0.1.0"
