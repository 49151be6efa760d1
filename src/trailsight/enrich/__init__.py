"""trailsight.enrich."""
