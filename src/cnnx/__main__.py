"""The command line: python -m cnnx (or `cnnx`) demo | config | --version"""
import sys

USAGE = ("usage: cnnx demo [options]   train the course CNN end to end (demo --help)\n"
         "       cnnx config           show how cnnx was built and how it runs\n"
         "       cnnx --version        print cnnx's version")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from . import __version__
        print(f"cnnx {__version__}")
        return 0
    if argv[0] == "demo":
        from .demo import main as demo
        return demo(argv[1:])
    if argv[0] == "config":
        if argv[1:] in (["-h"], ["--help"]):
            print("usage: cnnx config\n\nPrints the versions, the compiler, OpenMP and its "
                  "runtime, the thread count and the SIMD path.")
            return 0
        if argv[1:]:
            print(f"cnnx config: takes no arguments, received {' '.join(argv[1:])!r}",
                  file=sys.stderr)
            return 2
        from . import show_config
        show_config()
        return 0
    print(f"cnnx: unknown command {argv[0]!r}; expected demo, config or --version\n{USAGE}",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
