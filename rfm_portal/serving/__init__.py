"""How the portal is served: database-unavailable answers (503 + Retry-After) instead of 500s."""
