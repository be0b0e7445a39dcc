"""The work behind the local commands: `run`, `replay`, `up` (and its live runtime and snapshot), the file
precheck, and the options they share."""
