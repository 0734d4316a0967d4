"""Board: notes on a public board."""
