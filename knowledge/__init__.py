"""The knowledge base: ingestion, chunking, embedding, search, and the sample product corpus."""
