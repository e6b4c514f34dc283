"""`barge console`: a web console for Barge, acting with each user's own Kubernetes credentials."""
