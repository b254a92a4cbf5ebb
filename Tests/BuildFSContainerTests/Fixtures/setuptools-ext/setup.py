import glob
from setuptools import Extension, setup

# One extension compiled from several C files, so that a ccache run has
# something to count (one compilation per file).
setup(
    ext_modules=[
        Extension(
            "buildfs_fixture._core",
            sources=sorted(glob.glob("src/*.c")),
            extra_compile_args=["-g"],
        )
    ],
    packages=["buildfs_fixture"],
    package_dir={"buildfs_fixture": "python"},
)
