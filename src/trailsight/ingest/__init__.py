"""trailsight.ingest."""
