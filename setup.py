"""Build of cnnx's compiled kernels: Cython + OpenMP, portable optimisation flags.

The SIMD kernels are compiled once per instruction set, each path in its own translation
unit with that set's flags (src/cnnx/_simd_<path>.c), and linked into the one extension;
_dispatch.h picks a path at run time. This is NumPy's scheme, and needs no per-function
target attributes.

Environment switches:
  CNNX_ALLOW_SERIAL=1     build even when the compiler cannot do OpenMP; the kernels then
                          run on one thread (without it, such a build fails)
  CNNX_DEBUG_BUILD=1      bounds checking and wraparound back on, -O0 -g
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("CNNX_DEBUG_BUILD") == "1"
ALLOW_SERIAL = os.environ.get("CNNX_ALLOW_SERIAL") == "1"

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
            if not ALLOW_SERIAL:
                raise RuntimeError(
                    message + " Install an OpenMP runtime (Linux clang: libomp-dev; macOS: "
                    "libomp), or set CNNX_ALLOW_SERIAL=1 to build kernels that run on "
                    "one thread.")
            banner = "*" * 78
            print(f"\n{banner}\n{message}\nCNNX_ALLOW_SERIAL=1: the kernels will run on "
                  f"ONE thread.\n{banner}\n", file=sys.stderr)
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
        msvc = self.compiler.compiler_type == "msvc"
        clang_cl = find_clang_cl() if msvc else None
        if msvc and clang_cl is None:
            print("\ncnnx: clang-cl not found (LLVM for Windows): the SIMD kernels need GNU "
                  "vector extensions, which MSVC lacks, so this build gets the portable "
                  "scalar microkernel only (slower; same results).\n", file=sys.stderr)
        units = simd_units(x86=self.x86_target(), vector_extensions=not msvc or clang_cl)
        for ext in self.extensions:
            objects = [self.compile_unit(ext, source, isa, opt, clang_cl)
                       for source, isa in units]
            if len(units) > 1:
                ext.define_macros.append(("CNNX_X86_PATHS", "1"))
            ext.extra_objects = objects
            # -Wmaybe-uninitialized misfires on Cython's generated code (variables that
            # Cython assigns on every path through its own error labels): off for the
            # generated module only, not for our C.
            quiet = [] if msvc else [
                "-Wno-maybe-uninitialized" if "gcc" in self.compiler_name() else
                "-Wno-sometimes-uninitialized"]
            ext.extra_compile_args = opt + cflags + quiet
            ext.extra_link_args = ldflags + strip
        super().build_extensions()

    def compile_unit(self, ext, source, isa_flags, opt, clang_cl):
        """One SIMD path's object file, built with its instruction set's flags."""
        if clang_cl is None:
            warn = [] if self.compiler.compiler_type == "msvc" else WARNINGS
            return self.compiler.compile(
                [source], output_dir=self.build_temp, include_dirs=ext.include_dirs,
                extra_postargs=opt + warn + isa_flags, depends=ext.depends)[0]
        # Windows: clang-cl compiles the kernels into COFF objects that MSVC's linker
        # links into the MSVC-built module (the kernels use no OpenMP and no CRT state).
        obj = os.path.join(self.build_temp, os.path.basename(source) + ".obj")
        os.makedirs(self.build_temp, exist_ok=True)
        includes = [f"/I{d}" for d in ext.include_dirs]
        subprocess.run([clang_cl, "/nologo", "/c", "/O2", "/W3", *includes, *isa_flags,
                        source, f"/Fo{obj}"], check=True)
        return obj

    def x86_target(self):
        target = sysconfig.get_platform()   # honours cibuildwheel's cross-target settings
        return target.endswith(("x86_64", "amd64", "intel"))

    def compiler_name(self):
        cc = getattr(self.compiler, "compiler_so", None) or ["cc"]
        return "clang" if "clang" in os.path.basename(cc[0]) else "gcc"


def find_clang_cl():
    """clang-cl from PATH or LLVM's default Windows install (GitHub's Windows runners
    have it), or None."""
    found = shutil.which("clang-cl")
    default = os.path.join(os.environ.get("ProgramFiles", r"C:\Program Files"), "LLVM",
                           "bin", "clang-cl.exe")
    return found or (default if os.path.exists(default) else None)


# Our own C is held to these (and must build without a warning under them).
WARNINGS = ["-Wall", "-Wextra", "-Wno-unused-parameter"]
SIMD_SOURCES = {"generic": "src/cnnx/_simd_generic.c", "avx2": "src/cnnx/_simd_avx2.c",
                "avx512": "src/cnnx/_simd_avx512.c"}


def simd_units(x86, vector_extensions):
    """[(source, flags)] of the SIMD paths this build compiles.

    x86-64 with GNU vector extensions (gcc, clang, clang-cl): the baseline, AVX2 + FMA and
    AVX-512. aarch64: the baseline, on NEON. Without vector extensions (MSVC alone): the
    baseline unit, which then holds the portable scalar microkernel.
    """
    units = [(SIMD_SOURCES["generic"], [])]
    if x86 and vector_extensions:
        units += [(SIMD_SOURCES["avx2"], ["-mavx2", "-mfma"]),
                  (SIMD_SOURCES["avx512"], ["-mavx512f"])]
    return units


extensions = [
    Extension(
        "cnnx._kernels",
        ["src/cnnx/_kernels.pyx"],
        include_dirs=[numpy.get_include(), "src/cnnx"],
        # Every header: a change to one rebuilds the kernels and relinks the module.
        depends=[*sorted(glob.glob("src/cnnx/_*.h")), *SIMD_SOURCES.values(),
                 "src/cnnx/_kernels.pxd", *sorted(glob.glob("src/cnnx/_kernels_*.pxi"))],
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
