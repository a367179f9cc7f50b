"""Where packages are kept: one module per kind of store behind `base.PackageStore`."""
