"""`barge bench`: Barge's throughput against the cluster's own ceiling, measured in the same run."""
