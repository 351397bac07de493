"""The embeddable chat widget: its script, and its configuration per publishable key."""
