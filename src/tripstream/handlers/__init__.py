"""Thin Lambda entry points: parse the event, call the plain functions, shape the response."""
