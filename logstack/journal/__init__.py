"""What senders forward and analysis reads: a journal line, its stored record, which programs are kept."""
