"""cnnx.datasets: mnist, fashion_mnist and cifar10, each with Keras's load_data().

Files are verified against their published checksums and cached in $CNNX_HOME (default
~/.cnnx/datasets); $CNNX_DATASETS_MIRROR replaces the download origin."""
from . import cifar10, fashion_mnist, mnist

__all__ = ["mnist", "fashion_mnist", "cifar10"]
