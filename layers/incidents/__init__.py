"""Cases: reports and routing, the workflow, working time, categories, lists, metrics, events."""
