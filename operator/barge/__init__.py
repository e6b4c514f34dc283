"""Barge: the AWS Batch job model on Kubernetes."""

__version__ = "0.1.0"
