"""The authors' released files that the LUT engines' published figures come from.

Each file is named by its place in a local mirror (``srlut/…``, ``hklut/…``, ``set5/…``) and
registered with its upstream raw-file URL at a fixed commit and its SHA-256. ``fetch`` takes
the file from the mirror that ``NNLOOM_DATA`` names when it holds it, else from the user's
cache, else downloads it there with pooch; every copy is checked against its hash. Without
network and mirror it raises ``DataUnavailable`` at once, saying how to get the files.

The project's own tests and benchmarks run without these files (tables it trains or seeds);
only the checks that reproduce the authors' published figures need them.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from .errors import NnloomError

__all__ = [
    "ENV",
    "REGISTRY",
    "DataUnavailable",
    "fetch",
    "hklut_dir",
    "set5",
    "srlut_table",
    "how_to_get",
]

ENV = "NNLOOM_DATA"

_SRLUT = (
    "https://raw.githubusercontent.com/yhjo09/SR-LUT/"
    "1feba3686193d0e9681f378cfdad59f2e2a7b690/3_Test_using_LUT/"
)
_HKLUT = (
    "https://raw.githubusercontent.com/jasonli0707/hklut/"
    "b4daa280692d5b7ae2d0eba0affbb01f2a52557b/luts/msb_hdb_lsb_hd_act_relu_nf_64_2x2/"
)

# mirror path -> (URL, SHA-256)
REGISTRY: dict[str, tuple[str, str]] = {
    "srlut/Model_F_x4_4bit_int8.npy": (
        _SRLUT + "Model_F_x4_4bit_int8.npy",
        "7beb6de86036b8859949f6b7732b6cc9adde0f010b1b758281e8b6dc2ca8e66a",
    ),
    "srlut/Model_S_x2_4bit_int8.npy": (
        _SRLUT + "Model_S_x2_4bit_int8.npy",
        "04745833137253b1baac2146e0d21d415c181f17d0780eced6c33ce12de2ac82",
    ),
    "srlut/Model_S_x4_4bit_int8.npy": (
        _SRLUT + "Model_S_x4_4bit_int8.npy",
        "ad3fe9046bb664afade06c703cd3398273723c19af30400de4c241680085cba9",
    ),
    "srlut/Model_S_x4_5bit_int8.npy": (
        _SRLUT + "Model_S_x4_5bit_int8.npy",
        "ec7b0026798475dda56338fce22ef75f4647b7455dae8de65dd9cf20fbb2bf01",
    ),
    "hklut/S0_LSB_HD_LUT_D_x2_4bit_int8.npy": (
        _HKLUT + "S0_LSB_HD_LUT_D_x2_4bit_int8.npy",
        "b1b4a31a348fb40611f58b728801fe6520afa927f3e303a09a76840327e1043b",
    ),
    "hklut/S0_LSB_HD_LUT_H_x2_4bit_int8.npy": (
        _HKLUT + "S0_LSB_HD_LUT_H_x2_4bit_int8.npy",
        "7f4796f162c1b4d5bf96d71e5041eb7c519f24e75385dfd679a93a846dd2002b",
    ),
    "hklut/S0_MSB_HDB_LUT_B_x2_4bit_int8.npy": (
        _HKLUT + "S0_MSB_HDB_LUT_B_x2_4bit_int8.npy",
        "feb4bc2c056f2b4814406aa508e3304c7a2f74abe4e63f63935cc00d71d3efa5",
    ),
    "hklut/S0_MSB_HDB_LUT_D_x2_4bit_int8.npy": (
        _HKLUT + "S0_MSB_HDB_LUT_D_x2_4bit_int8.npy",
        "726ca7a5d5af205ac809ad4d70f2986e7a9242c143ee3c818c464c994c01403f",
    ),
    "hklut/S0_MSB_HDB_LUT_H_x2_4bit_int8.npy": (
        _HKLUT + "S0_MSB_HDB_LUT_H_x2_4bit_int8.npy",
        "835a8e7421d5cfb4950812b15658af17fcf121e9ca6e20413dfbb1f8727a8572",
    ),
    "hklut/S1_LSB_HD_LUT_D_x2_4bit_int8.npy": (
        _HKLUT + "S1_LSB_HD_LUT_D_x2_4bit_int8.npy",
        "21f037cee917d5deb48899c58dde058cc7feffc2aea510a1a3bedd59131db149",
    ),
    "hklut/S1_LSB_HD_LUT_H_x2_4bit_int8.npy": (
        _HKLUT + "S1_LSB_HD_LUT_H_x2_4bit_int8.npy",
        "d860235dca3fda13f5bb1a8f035cc16f855d706397d5378b048bbd9c4ba688c2",
    ),
    "hklut/S1_MSB_HDB_LUT_B_x2_4bit_int8.npy": (
        _HKLUT + "S1_MSB_HDB_LUT_B_x2_4bit_int8.npy",
        "90fd39fa66bf0cd0d4c3244b95f9be51e8217dc40395894b153540d92600fabd",
    ),
    "hklut/S1_MSB_HDB_LUT_D_x2_4bit_int8.npy": (
        _HKLUT + "S1_MSB_HDB_LUT_D_x2_4bit_int8.npy",
        "35d078b440ac5ea17d33a518c3ddf3511a8aeb5094f1e3d66e197b4fd1e32d28",
    ),
    "hklut/S1_MSB_HDB_LUT_H_x2_4bit_int8.npy": (
        _HKLUT + "S1_MSB_HDB_LUT_H_x2_4bit_int8.npy",
        "2b207f251df2f7798d3b5a056780bd3fdbb96450235e5e75ac0675271456be69",
    ),
    # Set5, as the SR-LUT authors ship it: HR ground truth and MATLAB-bicubic LR images.
    "set5/baby_HR.png": (
        _SRLUT + "test/HR/baby_GT.png",
        "20f8de1f73f7f4305a89a638913bdffff4cf741e5c476aab942a78a3c990a408",
    ),
    "set5/baby_LRx2.png": (
        _SRLUT + "test/LR_x2/baby_GT.png",
        "ad29a9fca12ea1f086cbef46dc5d26291529fb33d6d467f26e4684bd95a1b26e",
    ),
    "set5/baby_LRx4.png": (
        _SRLUT + "test/LR_x4/baby.png",
        "408f290a88500fdf8b5ae71dbd6d4f3e2fc74ec9578f4d717e637c50e679e47d",
    ),
    "set5/bird_HR.png": (
        _SRLUT + "test/HR/bird_GT.png",
        "3c6c79c4617838957a0215020d417102ff9996489188b2cde92bbc0359b6819a",
    ),
    "set5/bird_LRx2.png": (
        _SRLUT + "test/LR_x2/bird_GT.png",
        "d073db846f1228f9d10b799c3f0dde0debc6ff85ee1c39086bec7a63390462aa",
    ),
    "set5/bird_LRx4.png": (
        _SRLUT + "test/LR_x4/bird.png",
        "19e3c7ac8fa24856c1a0aa4421b137e208027e52d8d365d8e56cf95501606b52",
    ),
    "set5/butterfly_HR.png": (
        _SRLUT + "test/HR/butterfly_GT.png",
        "469d538e9df7c44574c95708bfca149eb84c31539f826ddcb1a8fd27bb2c733e",
    ),
    "set5/butterfly_LRx2.png": (
        _SRLUT + "test/LR_x2/butterfly_GT.png",
        "685262ca34315386ce7d79b4bfc259379c1c3d1faa7bdc17d56769c11618e631",
    ),
    "set5/butterfly_LRx4.png": (
        _SRLUT + "test/LR_x4/butterfly.png",
        "22f0c4a3e6e60cbc444ec177d37d5686c05236da41ce4594330d775f55868d0b",
    ),
    "set5/head_HR.png": (
        _SRLUT + "test/HR/head_GT.png",
        "0df5f291dd1c11ebb38e60d1bbfad58e637fd74e05db47b76bb3116573f1c302",
    ),
    "set5/head_LRx2.png": (
        _SRLUT + "test/LR_x2/head_GT.png",
        "c2dd2519c49d2d03016fb1c0ba82f75d09060a1f96ebc04fdb3c1e1ca6a59f20",
    ),
    "set5/head_LRx4.png": (
        _SRLUT + "test/LR_x4/head.png",
        "43e473c1cd9e79220b9631f2a80604241a6b4637f2850430714aa0dfe44b49eb",
    ),
    "set5/woman_HR.png": (
        _SRLUT + "test/HR/woman_GT.png",
        "53d941e7a4c3f808d577d6eef6a7f85b5a2105d779a690cee2ae283f55215f9c",
    ),
    "set5/woman_LRx2.png": (
        _SRLUT + "test/LR_x2/woman_GT.png",
        "5c8b09dda7012c4a026ab2cd3da0cd438e379981fbe92603b994d716464bd944",
    ),
    "set5/woman_LRx4.png": (
        _SRLUT + "test/LR_x4/woman.png",
        "88634efc320a89b19c0db225283c1df459b8132d6d6a7b20e2f9860a1cf770db",
    ),
}

SET5 = ("baby", "bird", "butterfly", "head", "woman")


class DataUnavailable(NnloomError):
    """A released file that is neither in the mirror nor in the cache and cannot be
    downloaded (or whose copy fails its hash)."""


def how_to_get() -> str:
    """One line telling the user how to make the released files available."""
    return (
        f"set {ENV} to a local mirror of them (same layout: srlut/, hklut/, set5/) or "
        f"allow network access to fetch them into the cache"
    )


def _cache_dir() -> Path:
    import pooch

    return Path(pooch.os_cache("nnloom"))


@functools.cache
def _hash_ok(path: Path, sha256: str, mtime_ns: int) -> bool:
    import pooch

    return pooch.file_hash(str(path), alg="sha256") == sha256


def _checked(path: Path, sha256: str) -> bool:
    return path.is_file() and _hash_ok(path, sha256, path.stat().st_mtime_ns)


# Set after the first failed download: the rest of the process does not try again.
_offline: list[str] = []


def fetch(name: str) -> Path:
    """The local path of the released file ``name`` (a key of ``REGISTRY``), hash-checked."""
    if name not in REGISTRY:
        raise KeyError(f"{name}: not a registered data file")
    url, sha256 = REGISTRY[name]
    mirror = os.environ.get(ENV)
    if mirror:
        path = Path(mirror).expanduser() / name
        if path.is_file():
            if not _checked(path, sha256):
                raise DataUnavailable(
                    f"{path}: its SHA-256 differs from the registered "
                    f"{sha256[:12]}… ({ENV} mirror); replace the file"
                )
            return path
    cached = _cache_dir() / name
    if _checked(cached, sha256):
        return cached
    where = f"not in {ENV}={mirror}" if mirror else f"{ENV} unset"
    if _offline:
        raise DataUnavailable(f"{name}: {where} and not cached ({_offline[0]}); {how_to_get()}")
    import logging

    import pooch

    pooch.get_logger().setLevel(logging.WARNING)
    try:
        pooch.retrieve(
            url,
            known_hash=f"sha256:{sha256}",
            fname=Path(name).name,
            path=cached.parent,
            progressbar=False,
            downloader=pooch.HTTPDownloader(progressbar=False, timeout=30),
        )
    except Exception as exc:  # no network, HTTP error, hash mismatch: one line for the user
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "resolve" in reason or "connect" in reason.lower():
            reason = "no network"
        _offline.append(reason)
        raise DataUnavailable(
            f"{name}: {where} and the download failed ({reason[:120]}); {how_to_get()}"
        ) from None
    return cached


def srlut_table(name: str) -> Path:
    """An SR-LUT authors' table, e.g. ``srlut_table("Model_S_x4_4bit")``."""
    return fetch(f"srlut/{name}_int8.npy")


def hklut_dir() -> Path:
    """The folder holding the HKLUT authors' ten HKLUT-S tables (``load_hklut_dir`` reads it)."""
    paths = [fetch(n) for n in REGISTRY if n.startswith("hklut/")]
    folders = {p.parent for p in paths}
    if len(folders) != 1:  # some in the mirror, some in the cache
        for n in REGISTRY:
            if n.startswith("hklut/"):
                _cache_copy(n)
        return _cache_dir() / "hklut"
    return folders.pop()


def _cache_copy(name: str) -> None:
    import shutil

    dest = _cache_dir() / name
    src = fetch(name)
    if src != dest:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)


def set5(scale: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Set5's (LR, HR) RGB uint8 pairs at ×``scale`` (2 or 4), in the authors' order."""
    from PIL import Image

    if scale not in (2, 4):
        raise ValueError(f"Set5 is registered at ×2 and ×4, not ×{scale}")
    pairs = []
    for n in SET5:
        with (
            Image.open(fetch(f"set5/{n}_LRx{scale}.png")) as lr,
            Image.open(fetch(f"set5/{n}_HR.png")) as hr,
        ):
            pairs.append((np.asarray(lr.convert("RGB")), np.asarray(hr.convert("RGB"))))
    return pairs
