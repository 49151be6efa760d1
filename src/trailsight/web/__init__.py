"""trailsight.web."""
