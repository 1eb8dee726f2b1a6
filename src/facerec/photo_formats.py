"""The photo formats facerec accepts: one list, used by the embedder (what it decodes) and by clients (what
``facerec import`` sends), so the two never disagree.

A format is recognised by its content (the first bytes of the file), never by a file name's extension: dataset
files often have none (Yale faces: ``subject01.happy``) or a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass

# Enough leading bytes to recognise every accepted format (ISO BMFF brands of AVIF/HEIF included).
SNIFF_BYTES = 64


@dataclass(frozen=True)
class PhotoFormat:
    """One accepted format: a name for people and the Pillow format names that decode it."""

    name: str
    pillow_formats: tuple[str, ...]


# Pillow opens MPO (the multi-picture JPEG of phones) through its JPEG decoder; the first picture is decoded.
JPEG = PhotoFormat("JPEG/MPO", ("JPEG",))
PNG = PhotoFormat("PNG", ("PNG",))
WEBP = PhotoFormat("WebP", ("WEBP",))
BMP = PhotoFormat("BMP", ("BMP",))
GIF = PhotoFormat("GIF", ("GIF",))
TIFF = PhotoFormat("TIFF", ("TIFF",))
NETPBM = PhotoFormat("PPM/PGM", ("PPM",))  # Pillow's PPM plugin reads PBM, PGM and PPM
AVIF = PhotoFormat("AVIF", ("AVIF",))
HEIF = PhotoFormat("HEIC/HEIF", ("HEIF",))  # the iPhone default; decoded by pillow-heif

ACCEPTED: tuple[PhotoFormat, ...] = (JPEG, PNG, WEBP, BMP, GIF, TIFF, NETPBM, AVIF, HEIF)
"""Every format a photo may be sent in."""

ACCEPTED_NAMES = ", ".join(f.name for f in ACCEPTED)
"""The accepted formats as error messages and help texts name them."""

PILLOW_FORMATS: tuple[str, ...] = tuple(name for f in ACCEPTED for name in f.pillow_formats)
"""The Pillow decoders the embedder opens; no other decoder is ever tried."""

# ISO base media file format brands (the ``ftyp`` box) of the two image formats built on it.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"})


def sniff(head: bytes) -> PhotoFormat | None:
    """The accepted format whose signature ``head`` (a file's first :data:`SNIFF_BYTES` bytes) starts with.

    ``None`` for anything else. This looks at signatures only: whether the rest of the file decodes is the
    embedder's to say.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"BM"):
        return BMP
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        return NETPBM
    return _iso_media_format(head)


def _iso_media_format(head: bytes) -> PhotoFormat | None:
    """AVIF or HEIF from the ``ftyp`` box: its major brand, then its compatible brands (AVIF wins)."""
    if head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[0:4], "big")
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(box_size, len(head)) - 3, 4)}
    if brands & _AVIF_BRANDS:
        return AVIF
    if brands & _HEIF_BRANDS:
        return HEIF
    return None
