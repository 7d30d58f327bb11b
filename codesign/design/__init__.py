"""The stage IR of a run folder: read and written (ir), composed from the export, the policy and the DSE's
choice (compose), executed exactly in integers (reference), and the no-exit baseline of a design."""
