"""The use cases: producer (S3 object -> Kinesis records), consumer (records -> tables); clients passed in."""
