"""Selection: the recipe's candidates, quality flags and difficulty band turned into one deterministic pool."""
