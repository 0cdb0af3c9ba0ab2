"""Stage download_mnist: the four canonical MNIST IDX files, MD5-verified, and which source served them."""
from pathlib import Path

from ddpm import params
from ddpm.data import MNIST_MD5, download_mnist
from ddpm.io import save_json
from ddpm.stage import run_stage

OUT = Path("data/mnist/raw")


def main() -> None:
    p = params.load_stage("download_mnist")["download_mnist"]
    source = download_mnist(OUT, p["sources"])
    save_json({"source": source, "md5": MNIST_MD5}, "data/mnist/source.json")
    print(f"MNIST from {source}: 4 IDX files verified in {OUT}")


if __name__ == "__main__":
    run_stage(main)
