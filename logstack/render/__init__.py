"""Every file each machine needs, rendered deterministically from the site."""
