"""Patrol: inspectors' GPS fixes, shifts, patrolled cells, coverage, on-duty time, off-post
episodes (脱岗) and the inspector evaluation."""
