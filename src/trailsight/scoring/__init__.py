"""trailsight.scoring."""
