"""The kopf operator around the pure core."""
