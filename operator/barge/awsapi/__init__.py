"""`barge aws-api`: AWS Batch's REST-JSON API over Barge's kinds (SigV4 in, impersonation out)."""
