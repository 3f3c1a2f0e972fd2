"""Built-in nodes that need nothing beyond flowkit's core dependencies."""
