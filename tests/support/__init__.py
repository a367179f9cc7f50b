"""Test support shared by every test level: real services started by fixtures, workloads."""
