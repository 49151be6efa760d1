"""trailsight.simulate."""
