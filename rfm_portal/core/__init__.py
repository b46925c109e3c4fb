"""Cross-app building blocks with no models: strict API validation, error handling, safe CSV exports."""
