"""Personal data scrubbing: e-mails, phone numbers, card numbers, addresses, names, handles."""

from training.pii.findings import Finding
from training.pii.scrubber import KINDS, Scrubber, ScrubSettings

__all__ = ["KINDS", "Finding", "ScrubSettings", "Scrubber"]
