"""Where chunk vectors live: Qdrant (local mode or server), Qdrant Edge."""
