"""Encoders. Each returns the pyramid {"P1".."P5"}; importing this package registers them."""
