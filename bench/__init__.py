"""`make bench`: dblogpack against the shell tools a user would otherwise use, on generated data."""
