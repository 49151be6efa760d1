"""trailsight.features."""
