"""trailsight.investigate."""
