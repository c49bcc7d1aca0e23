"""The audit trail: an append-only, hash-chained log of who did what, when and from where.

Entries are appended by the SQL function ``audit_append`` (migration 0013), which chains
each row to the one before it under a lock; ``recording`` appends them (inside a write's own
transaction, or on their own), ``chain`` verifies the chain, ``listing`` pages through it
and ``retention`` removes old rows behind an anchor that keeps the rest verifiable.
"""
