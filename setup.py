"""The compiled parts of the engine; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dblogpack.formats._scan",
            ["src/dblogpack/formats/_scan.c"],
            extra_compile_args=["-O3", "-Wall", "-Wextra"],
        ),
        # OpenSSL's libcrypto is loaded at run time (dlopen): only its header is needed here.
        Extension(
            "dblogpack._sha256",
            ["src/dblogpack/_sha256.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
        ),
        Extension(
            "dblogpack._heap",
            ["src/dblogpack/_heap.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
        ),
    ]
)
