"""Sensors: the registry, readings and alarms."""
