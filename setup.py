"""Build of cnnx's compiled kernels: Cython + OpenMP, portable optimisation flags.

Environment switches:
  CNNX_REQUIRE_OPENMP=1   fail the build when the compiler cannot do OpenMP
                          (otherwise the build warns loudly and the kernels run serially)
  CNNX_DEBUG_BUILD=1      bounds checking and wraparound back on, -O0 -g
"""
import os
import sys
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("CNNX_DEBUG_BUILD") == "1"
REQUIRE_OPENMP = os.environ.get("CNNX_REQUIRE_OPENMP") == "1"

# Built and linked the way the extension is (a shared object, with the same flags),
# so that the probe answers for the real build.
OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int cnnx_openmp_probe(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n + omp_get_max_threads();
    }
    """
)


def openmp_flags(compiler):
    """(compile flags, link flags) for OpenMP with this compiler, by its family."""
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin":
        # Apple clang has no driver support: preprocess with it and link libomp
        # (Homebrew's or conda-forge's, found through CPPFLAGS/LDFLAGS).
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


def compiles_and_links(compiler, cflags, ldflags):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            compiler.link_shared_object(objs, os.path.join(tmp, "probe.so"),
                                        extra_postargs=ldflags)
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        cflags, ldflags = openmp_flags(self.compiler)
        has_openmp = compiles_and_links(self.compiler, cflags, ldflags)
        if not has_openmp:
            message = (
                "cnnx: this compiler cannot build OpenMP code "
                f"(tried compile flags {cflags}, link flags {ldflags})."
            )
            if REQUIRE_OPENMP:
                raise RuntimeError(message + " CNNX_REQUIRE_OPENMP=1 makes this an error.")
            banner = "*" * 78
            print(f"\n{banner}\n{message}\nThe kernels will run on ONE thread.\n{banner}\n",
                  file=sys.stderr)
            cflags, ldflags = [], []
        strip = []
        if self.compiler.compiler_type == "msvc":
            opt = ["/Od", "/Zi"] if DEBUG else ["/O2"]
        else:
            # Python's own CFLAGS carry -g: a release wheel needs no debug info (it would
            # triple the extension's size).
            opt = ["-O0", "-g"] if DEBUG else ["-O3", "-g0"]
            if not DEBUG and sys.platform.startswith("linux"):
                strip = ["-Wl,--strip-all"]
        for ext in self.extensions:
            ext.extra_compile_args = opt + cflags
            ext.extra_link_args = ldflags + strip
        super().build_extensions()


extensions = [
    Extension(
        "cnnx._kernels",
        ["src/cnnx/_kernels.pyx"],
        include_dirs=[numpy.get_include(), "src/cnnx"],
        depends=["src/cnnx/_simd.h", "src/cnnx/_ukernel_template.h",
                 "src/cnnx/_ukernel_both.h", "src/cnnx/_direct_template.h",
                 "src/cnnx/_direct_both.h", "src/cnnx/_nhwc_template.h",
                 "src/cnnx/_pool_template.h"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "cdivision": True,
            "initializedcheck": DEBUG,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
