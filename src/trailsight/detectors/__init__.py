"""trailsight.detectors."""
