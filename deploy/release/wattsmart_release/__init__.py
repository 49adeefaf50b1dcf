"""The fleet's release tool, for the operator's workstation (never installed on a box): see `cli`."""
