"""One widget per module; widgets post messages up and never start workers."""
