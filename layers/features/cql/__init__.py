"""CQL2 (text and JSON): parsing and compiling to SQL."""
