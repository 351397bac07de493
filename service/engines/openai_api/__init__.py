"""The OpenAI-compatible HTTP face of an engine: what `vllm serve` exposes, for any engine."""
