"""HTTP routers: each translates HTTP to calls into the package that owns the logic."""
