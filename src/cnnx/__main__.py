"""python -m cnnx demo | config"""
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m cnnx demo [options]   train the course CNN end to end\n"
              "       python -m cnnx config           show how cnnx was built\n"
              "(python -m cnnx demo --help for the demo's options)")
        return 0 if argv else 2
    if argv[0] == "demo":
        from .demo import main as demo
        return demo(argv[1:])
    if argv[0] == "config":
        from . import show_config
        show_config()
        return 0
    print(f"cnnx: unknown command {argv[0]!r}; expected demo or config", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
