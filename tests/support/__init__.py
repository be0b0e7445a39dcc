"""Helpers of tripstream's own tests: fault injection on the real HTTP traffic, delivery-test harness."""
