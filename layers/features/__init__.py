"""OGC API Features: repository, history, rules, input, SQL, filters, spatial queries."""
