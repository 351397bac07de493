"""Admin routes (admin key): prompt preview; knowledge and model-version admin come later."""
