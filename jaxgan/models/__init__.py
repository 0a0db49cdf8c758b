"""Generator and critic architectures."""
