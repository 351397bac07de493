"""LLM engines behind one protocol: the embedded CPU engine (transformers + PEFT) and vLLM."""
