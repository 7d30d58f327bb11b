"""The run steps: the step table, the make-style flow, the estimate, simulation and report steps, and the
summary of a run (the command line, codesign/cli.py, drives them)."""
