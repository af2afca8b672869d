"""Vendor payload -> canonical events, one module per source; pure functions, no I/O."""
