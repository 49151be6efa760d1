"""trailsight.store."""
