"""The `barge` command."""
