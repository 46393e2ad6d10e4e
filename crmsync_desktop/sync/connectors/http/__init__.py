"""The HTTP boundary shared by both connectors: one transport, one retry policy, one error translation."""
