"""Every boto3 call of tripstream, typed and small; clients are created by :mod:`.clients` and passed in."""
