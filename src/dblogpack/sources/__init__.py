"""Where log bytes come from: one module per kind of source behind `base.LogSource`."""
