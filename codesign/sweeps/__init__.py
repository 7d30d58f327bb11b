"""Sweeps: many design points, each one flow run, as Ray tasks on a local or joined cluster."""
