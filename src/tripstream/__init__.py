"""tripstream: real-time NYC taxi trip analytics (S3 -> Kinesis -> Lambda -> DynamoDB)."""

__version__ = "0.1.0"
