"""Training: rated transcripts → datasets → LoRA adapters → four-way evaluation (issue 7).

The service never imports this package; it only loads the adapters this package publishes.
"""
