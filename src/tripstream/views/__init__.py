"""The read side: the report (terminal, HTML), PartiQL queries, TLC zone names."""
