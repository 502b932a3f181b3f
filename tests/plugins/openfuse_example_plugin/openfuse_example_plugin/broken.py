"""A plugin module whose import fails on purpose: the registry must report it and keep working."""

raise ImportError("this example plugin is broken on purpose")
