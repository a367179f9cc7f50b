"""The compiled part of the engine; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dblogpack.formats._scan",
            ["src/dblogpack/formats/_scan.c"],
            extra_compile_args=["-O3", "-Wall", "-Wextra"],
        )
    ]
)
