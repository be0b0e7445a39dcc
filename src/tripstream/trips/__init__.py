"""The trip logic: schemas, normalisation, analytics. Pure Python, no AWS."""
