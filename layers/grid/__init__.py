"""The H3 grid: cells, lookup, responsibility, assignments, balanced territories."""
