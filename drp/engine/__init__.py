"""The engine: plan, execute, step kinds, retry policy; it emits events and never prints."""
