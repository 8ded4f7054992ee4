"""Journal line to fact: the vocabulary, the message table, its compiled rules and the programs that write them."""
