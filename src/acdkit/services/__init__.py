"""What more than one adapter needs, written against the store and the core."""
