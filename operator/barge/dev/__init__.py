"""Developer tooling: the local control plane built from the Go module proxy."""
