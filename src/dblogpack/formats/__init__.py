"""How log bytes become entries: one module per format behind `base.LogFormat`."""
