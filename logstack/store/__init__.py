"""GreptimeDB as logstack reaches it: SQL over HTTP and MySQL, the store reader, backups and restores."""
