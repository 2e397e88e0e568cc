"""User-editable configuration: paths, agent files, preferences, custom models, safe file writes."""
