"""Built-in connectors. Each folder is one connector; they register through entry points."""
