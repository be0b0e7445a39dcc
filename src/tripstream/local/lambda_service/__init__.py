"""The local Lambda service: what AWS Lambda does for the stack, done on this machine against any endpoint
(events, context, asynchronous invocation with its dead-letter queue, the Kinesis event source mapping with its
checkpoints, S3 notifications through SQS, and `functions`: the one place that builds the functions)."""
